"""Timing one model and pass inside its measuring process: the callables for each pass, the first
(cold) call, then repeated warm calls, and the summary statistics of the samples.

CPU: wall clock (time.perf_counter). CUDA: CUDA events on the current stream, so a time is the GPU
timeline from the start of a block of calls to the end of its work.

torch.utils.benchmark is not used: importing it imports torch.utils.cpp_extension, which warns
"No CUDA runtime is found" on every start with a CUDA build of torch on a machine without a GPU.
"""
from __future__ import annotations

import math
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Callable, List

import torch

from .models import BenchModel, trainable

TIMING_METHOD = {
    "cpu": ("wall clock (time.perf_counter); every model and pass in fresh processes (one per round), "
            "cold = the first call there, warm = per-call times of the following calls after one more "
            "warm-up call (none where the first call exceeds the round's time cap; blocks of several "
            "calls below 1 ms), median and quartiles over all rounds"),
    "cuda": ("CUDA events around each block of calls; every model and pass in fresh processes (one per "
             "round), cold = the first call there, warm = per-call times of the following calls after "
             "one more warm-up call (none where the first call exceeds the round's time cap), median "
             "and quartiles over all rounds"),
}
BLOCK_S = 1e-3  # calls shorter than this are timed in blocks, so the clock's own cost is negligible


def forward_fn(model: BenchModel, input: torch.Tensor) -> Callable[[], object]:
    """Inference: the forward pass under torch.no_grad()."""
    def run():
        with torch.no_grad():
            return model(input)
    return run


def forward_backward_fn(model: BenchModel, input: torch.Tensor) -> Callable[[], object]:
    """Training step: loss = output.sum() + h_n.sum(), gradients to the input and every parameter.

    torch.autograd.grad returns the gradients instead of accumulating into .grad, so repeated
    calls do the same work each time.
    """
    input = input.detach().requires_grad_(True)
    wrt = [input] + trainable(model)

    def run():
        output, h_n = model(input)
        return torch.autograd.grad(output.sum() + h_n.sum(), wrt)
    return run


def pass_fn(pass_name: str, model: BenchModel, input: torch.Tensor) -> Callable[[], object]:
    return forward_fn(model, input) if pass_name == "forward" else forward_backward_fn(model, input)


def minor_faults() -> int:
    """Minor page faults of this process so far: first touches of freshly mapped memory (a measure
    that does not depend on the machine's load)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_block(fn: Callable[[], object], number: int, device: torch.device) -> float:
    """Seconds for `number` calls, their work finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


@dataclass
class Samples:
    """What one measuring process saw for one model and pass."""
    cold_s: float           # the first call in the process
    cold_faults: int        # minor page faults during it
    warm_s: List[float]     # per-call seconds of each timed block after the warm-up call
    warm_faults: float      # minor page faults per warm call (mean over the timed calls)
    calls: int              # warm calls timed


def measure(fn: Callable[[], object], device: torch.device, budget_s: Callable[[float], float],
            slow_s: float) -> Samples:
    """The cold call, one warm-up call, then blocks of calls until `budget_s(one call's seconds)`
    seconds of timed calls are reached (at least one block). A model whose cold call alone takes
    `slow_s` or more gets no warm-up call: its one-time costs are small beside a call, and each
    extra call of it costs seconds."""
    faults = minor_faults()
    cold = time_block(fn, 1, device)
    cold_faults = minor_faults() - faults
    one_call = cold if cold >= slow_s else time_block(fn, 1, device)  # warm-up; sizes the blocks
    number = max(1, math.ceil(BLOCK_S / max(one_call, 1e-9)))
    budget, total, warm = budget_s(one_call), 0.0, []
    faults = minor_faults()
    while not warm or total < budget:
        seconds = time_block(fn, number, device)
        warm.append(seconds / number)
        total += seconds
    calls = len(warm) * number
    return Samples(cold, cold_faults, warm, (minor_faults() - faults) / calls, calls)


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


def configure_threads(threads: int) -> None:
    """Every model runs with the same intra-op thread count."""
    torch.set_num_threads(threads)


def disable_tf32() -> str:
    """Full float32 matmuls on CUDA, so nn.RNN / nn.LSTM (cuBLAS, cuDNN) are not given TF32."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return "TF32 disabled (torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False)"
