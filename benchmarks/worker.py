"""Each model and pass is measured in a fresh process, so every model starts from the heap a plain
user script has: no buffers left mapped by the models timed before it (a warm heap hides the
first-touch page faults of freshly mapped temporaries, which a user's process pays).

The processes are forked from a server that has imported torch, cwrnn_ext and this module and
run nothing else (multiprocessing's forkserver), so a fresh process costs milliseconds, not the
seconds of importing torch.
"""
from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import traceback
from dataclasses import dataclass
from typing import Optional

import torch

import cwrnn_ext  # noqa: F401 - imported once in the fork server, not in every process
from .configs import Config
from .machine import cpu_capabilities
from .models import build_models
from .timing import configure_threads, disable_tf32, measure, pass_fn


@dataclass(frozen=True)
class Task:
    """One model and pass on one config, measured in one fresh process (one round of several)."""
    config: Config
    model: str
    pass_name: str
    device: str
    threads: int
    min_run_time: float  # total seconds of timed calls over all rounds ...
    min_repeats: int     # ... or this many calls if that takes longer ...
    max_run_time: float  # ... but no more than this
    rounds: int
    seed: int = 0

    def budget_s(self, one_call_s: float) -> float:
        """Seconds of timed calls in this round."""
        return min(max(self.min_run_time, self.min_repeats * one_call_s), self.max_run_time) / self.rounds


def prepare_process(device: torch.device, threads: int) -> None:
    """Start what every model needs and a user's process has started long before its model runs:
    the intra-op thread pool and BLAS (CPU), the CUDA context and cuBLAS (CUDA). Small tensors
    only, so the heap stays as a fresh process has it."""
    configure_threads(threads)
    if device.type == "cuda":
        disable_tf32()
    a = torch.ones(64, 64, device=device)
    (a @ a).sum().item()


def run_task(task: Task) -> dict:
    """Runs in the fresh process: build the model, time the cold call and the warm calls."""
    device, dtype = torch.device(task.device), getattr(torch, task.config.dtype)
    prepare_process(device, task.threads)
    model = build_models(task.config, [task.model], device, dtype, task.seed)[task.model]
    torch.manual_seed(task.seed)
    config = task.config
    input = torch.randn(config.steps, config.batch, config.input_size, device=device, dtype=dtype)
    fn = pass_fn(task.pass_name, model, input)
    samples = measure(fn, device, task.budget_s, slow_s=task.max_run_time / task.rounds)
    capability = cpu_capabilities()["kernel" if task.model == "cwrnn" else "torch"]  # the code this model ran
    return {"status": "ok", "cold_s": samples.cold_s, "cold_faults": samples.cold_faults,
            "warm_s": samples.warm_s, "warm_faults": samples.warm_faults, "calls": samples.calls,
            "cpu_capability": capability}


def _child_main(task: Task, connection) -> None:
    # Ctrl-C reaches the whole process group: the benchmark ends this process itself, without a
    # second traceback from here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = run_task(task)
    except Exception as error:  # noqa: BLE001 - a model that fails here (a dtype a baseline lacks,
        # out of memory) is recorded, not allowed to end a long sweep
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        result = {"status": f"failed: {type(error).__name__}: {message}"[:300],
                  "traceback": traceback.format_exc()[-2000:]}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    result["pid"] = os.getpid()
    try:
        connection.send(result)
        connection.close()
    except BrokenPipeError:  # the benchmark stopped waiting (interrupted): nobody to tell
        pass


class FreshProcesses:
    """Runs each Task in a new process and returns its result dict (status 'failed: ...' if the
    process died or hung)."""

    def __init__(self):
        methods = multiprocessing.get_all_start_methods()
        # fork from this process would copy its heap (and any thread pool it started): never
        self.context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if self.context.get_start_method() == "forkserver":
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
