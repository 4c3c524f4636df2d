"""Measuring one model and pass: in a fresh process, the first (cold) call, then warm calls; and,
in the benchmark's own process, the peak memory of one forward+backward call.

Why fresh processes: every model then starts from the heap a plain user script has, with no
buffers left mapped by the models timed before it (a warm heap hides the first-touch page faults of
freshly mapped temporaries, which a user's process pays). They are forked from a server that has
imported torch and cwrnn_ext (multiprocessing's forkserver), so one costs milliseconds.

Wall clock, not torch.utils.benchmark: importing that warns "No CUDA runtime is found" with a CUDA
build of torch on a machine without a GPU.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import resource
import signal
import statistics
import time
import traceback
from dataclasses import dataclass
from typing import Callable, List, Optional

# Otherwise the profiler's backend prints start/stop lines on stderr for every measured call.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import cwrnn_ext  # noqa: E402,F401 - imported once in the fork server, not in every process

from .configs import Config, Timing  # noqa: E402
from .machine import cpu_capabilities  # noqa: E402
from .models import BenchModel, build_models, trainable  # noqa: E402

TIMING_METHOD = ("wall clock (time.perf_counter); every model and pass in fresh processes (one per round), "
                 "cold = the first call there, warm = per-call times of the following calls after one more "
                 "warm-up call (none where the first call exceeds the round's time cap; blocks of several "
                 "calls below 1 ms), median and quartiles over all rounds")
MEMORY_METHOD = ("torch.profiler(profile_memory=True): peak of the running sum of the CPU allocation "
                 "events ([memory] events, in time order) during one call, above what was live before it")
BLOCK_S = 1e-3  # calls shorter than this are timed in blocks, so the clock's own cost is negligible


def pass_fn(pass_name: str, model: BenchModel, input: torch.Tensor) -> Callable[[], object]:
    """forward: under torch.no_grad(). forward_backward: loss = output.sum() + h_n.sum(), gradients
    to the input and every parameter (torch.autograd.grad: nothing accumulates between calls)."""
    if pass_name == "forward":
        def forward():
            with torch.no_grad():
                return model(input)
        return forward
    input = input.detach().requires_grad_(True)
    wrt = [input] + trainable(model)

    def forward_backward():
        output, h_n = model(input)
        return torch.autograd.grad(output.sum() + h_n.sum(), wrt)
    return forward_backward


def minor_faults() -> int:
    """Minor page faults of this process so far: first touches of freshly mapped memory."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_block(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Task:
    """One model and pass on one config, measured in one fresh process (one round of several)."""
    config: Config
    model: str
    pass_name: str
    threads: int
    timing: Timing
    seed: int = 0


def run_task(task: Task) -> dict:
    """In the fresh process: the cold call, one warm-up call, then blocks of calls until the round's
    budget is spent (at least one block). A model whose cold call alone takes the round's cap gets
    no warm-up call: its one-time costs are small beside a call, and each extra call costs seconds."""
    torch.set_num_threads(task.threads)
    a = torch.ones(64, 64)  # start the thread pool and BLAS, as a user's process has long before
    (a @ a).sum().item()
    model = build_models(task.config, [task.model], torch.device("cpu"), getattr(torch, task.config.dtype),
                         task.seed)[task.model]
    torch.manual_seed(task.seed)
    config = task.config
    fn = pass_fn(task.pass_name, model, torch.randn(config.steps, config.batch, config.input_size,
                                                    dtype=getattr(torch, config.dtype)))
    faults = minor_faults()
    cold = time_block(fn, 1)
    cold_faults = minor_faults() - faults
    one_call = cold if cold >= task.timing.max_run_time / task.timing.rounds else time_block(fn, 1)
    number = max(1, math.ceil(BLOCK_S / max(one_call, 1e-9)))
    budget, total, warm = task.timing.budget_s(one_call), 0.0, []
    faults = minor_faults()
    while not warm or total < budget:
        seconds = time_block(fn, number)
        warm.append(seconds / number)
        total += seconds
    calls = len(warm) * number
    return {"status": "ok", "cold_s": cold, "cold_faults": cold_faults, "warm_s": warm,
            "warm_faults": (minor_faults() - faults) / calls, "calls": calls,
            # the code this model ran: the kernel's own instruction set, or torch's
            "cpu_capability": cpu_capabilities()["kernel" if task.model == "cwrnn" else "torch"]}


def _child_main(task: Task, connection) -> None:
    # Ctrl-C reaches the whole process group: the benchmark ends this process itself, without a
    # second traceback from here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = run_task(task)
    except Exception as error:  # noqa: BLE001 - a model that fails (out of memory) is recorded,
        # not allowed to end a long sweep
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        result = {"status": f"failed: {type(error).__name__}: {message}"[:300],
                  "traceback": traceback.format_exc()[-2000:]}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"], result["pid"] = usage.ru_utime + usage.ru_stime, os.getpid()
    try:
        connection.send(result)
        connection.close()
    except BrokenPipeError:  # the benchmark stopped waiting (interrupted): nobody to tell
        pass


class FreshProcesses:
    """Runs each Task in a new process and returns its result dict (status 'failed: ...' if the
    process died or hung)."""

    def __init__(self):
        # fork from this process would copy its heap (and any thread pool it started): never
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self.context = multiprocessing.get_context(method)
        if method == "forkserver":
            self.context.set_forkserver_preload([__name__])

    def run(self, task: Task, timeout_s: float) -> dict:
        receiver, sender = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_child_main, args=(task, sender), daemon=True)
        process.start()
        sender.close()  # ours; the child holds its own copy, so its death reads as end of file
        result: Optional[dict] = None
        finished = False
        try:
            finished = receiver.poll(timeout_s)  # True on a result or on the child's death
            if finished:
                result = receiver.recv()
        except EOFError:
            pass
        finally:  # also when the benchmark is interrupted: no measuring process outlives it
            process.join(timeout=60 if result is not None else (1 if finished else 0))
            if process.is_alive():
                process.kill()
                process.join()
            receiver.close()
        if result is None:
            why = (f"exited with code {process.exitcode}" if finished
                   else f"did not finish in {timeout_s:.0f} s and was killed")
            result = {"status": f"failed: the measuring process {why}", "cpu_s": None}
        return result


@dataclass
class Summary:
    median_s: float
    q1_s: float
    q3_s: float
    min_s: float  # the least disturbed sample: a check on the median when the machine is busy
    samples: int  # timed blocks behind the quartiles (each the mean time of one or more calls)


def summarise(values: List[float]) -> Summary:
    """Median and quartiles (linear interpolation, as numpy's default) of per-call times."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return Summary(ordered[0], ordered[0], ordered[0], ordered[0], 1)
    q1, median, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return Summary(median, q1, q3, ordered[0], len(ordered))


def peak_memory_mib(model: BenchModel, config: Config, warm_up: bool, seed: int) -> Optional[float]:
    """The most memory one forward+backward call held at once on top of what was live before it: the
    profiler's allocation events, in time order, summed (CPU has no peak counter). None if the
    profiler's internals moved. Measured in the benchmark's own process, not in the measuring ones:
    the peak is a sum of allocation sizes, which the heap's state does not change, and the profiler
    costs a second or two to start per process."""
    torch.manual_seed(seed)
    fn = pass_fn("forward_backward", model, torch.randn(config.steps, config.batch, config.input_size,
                                                        dtype=getattr(torch, config.dtype)))
    if warm_up:  # lazy initialisation is not part of the peak (slow models: one call is plenty)
        fn()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    del result
    try:
        events = prof.profiler.kineto_results.events()
    except AttributeError:
        return None
    cpu = torch.autograd.DeviceType.CPU
    allocations = sorted(((e.start_ns(), e.nbytes()) for e in events  # stable: ties keep the recorded order
                          if e.name() == "[memory]" and e.device_type() == cpu), key=lambda item: item[0])
    live = peak = 0
    for _, nbytes in allocations:
        live += nbytes
        peak = max(peak, live)
    return peak / 2 ** 20
