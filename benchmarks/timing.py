"""Timing with torch.utils.benchmark: the callables for each pass, and medians of repeated calls.

CPU: wall clock (timeit.default_timer). CUDA: a clock read from CUDA events on the current
stream, so the time is the GPU timeline from the start of a block of calls to the end of its work.
"""
from __future__ import annotations

import time
import timeit
from dataclasses import dataclass
from typing import Callable, Dict

import torch
from torch.utils import benchmark

from .models import BenchModel, trainable

TIMING_METHOD = {
    "cpu": ("torch.utils.benchmark.Timer.blocked_autorange, wall clock (timeit.default_timer), "
            "models interleaved over rounds, median per call"),
    "cuda": ("torch.utils.benchmark.Timer.blocked_autorange, CUDA-event clock, "
             "models interleaved over rounds, median per call"),
}


@dataclass
class Timing:
    median_s: float
    iqr_s: float
    min_s: float  # the least disturbed sample: a check on the median when the machine is busy
    samples: int  # timed blocks behind the median (each the mean time of one or more calls)


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


class CudaEventClock:
    """A timer for timeit: each reading records a CUDA event, waits for it, and returns seconds
    since the first reading, measured between events on the GPU."""

    def __init__(self):
        self.origin = None

    def __call__(self) -> float:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        event.synchronize()
        if self.origin is None:
            self.origin = event
            return 0.0
        return self.origin.elapsed_time(event) / 1e3


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(fn: Callable[[], object], device: torch.device) -> float:
    """One untimed call (lazy initialisation, allocator caches, oneDNN / cuDNN plans); its duration."""
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def measure_interleaved(fns: Dict[str, Callable[[], object]], one_call: Dict[str, float],
                        device: torch.device, threads: int, min_run_time: float, min_repeats: int,
                        rounds: int, max_run_time: float) -> Dict[str, Timing]:
    """Median time of each (warmed-up) callable, measured in `rounds` interleaved rounds
    (A B C, A B C, ...); `one_call` is each one's warm-up duration.

    Interleaving spreads slow phases of a busy or throttling machine over every model instead of
    letting one model absorb them. Each model gets about max(min_run_time, min_repeats calls) of
    timed runs in total, so even a slow model's median rests on `min_repeats` calls, but no more
    than max_run_time (at least one call per round), so a very slow model cannot stall the run.
    """
    clock = CudaEventClock() if device.type == "cuda" else timeit.default_timer
    timers = {name: benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads, timer=clock,
                                    label=name)
              for name, fn in fns.items()}
    measurements: Dict[str, list] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, timer in timers.items():
            budget = min(max(min_run_time, min_repeats * one_call[name]), max_run_time) / rounds
            measurements[name].append(timer.blocked_autorange(min_run_time=budget))
    timings = {}
    for name, parts in measurements.items():
        merged = benchmark.Measurement.merge(parts)[0]  # all rounds' per-call times together
        timings[name] = Timing(merged.median, merged.iqr, min(merged.times), len(merged.times))
    return timings


def configure_threads(threads: int) -> None:
    """Every model runs with the same intra-op thread count (the Timer sets it again per run)."""
    torch.set_num_threads(threads)


def disable_tf32() -> str:
    """Full float32 matmuls on CUDA, so nn.RNN / nn.LSTM (cuBLAS, cuDNN) are not given TF32."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return "TF32 disabled (torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False)"
