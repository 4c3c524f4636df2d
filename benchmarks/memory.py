"""Peak memory of one call (used for forward+backward).

CUDA: the caching allocator's own peak counter. CPU has no such counter, so the profiler's
allocation events are replayed in time order; the peak of their running sum is the most memory the
call held at once on top of what was live before it (inputs and parameters are not counted).
"""
from __future__ import annotations

import os
from typing import Callable, Optional

import torch
from torch.profiler import ProfilerActivity, profile

# Otherwise the profiler's backend prints start/stop lines on stderr for every measured call.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")

MEMORY_METHOD = {
    "cpu": ("torch.profiler(profile_memory=True): peak of the running sum of the CPU allocation "
            "events ([memory] events, in time order) during one call, above what was live before it"),
    "cuda": "torch.cuda.max_memory_allocated() during one call minus torch.cuda.memory_allocated() before it",
}


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> Optional[int]:
    if device.type == "cuda":
        return _cuda_peak(fn, device)
    return _cpu_peak(fn)


def _cuda_peak(fn, device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del result
    return peak


def _cpu_peak(fn) -> Optional[int]:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    del result
    try:
        events = prof.profiler.kineto_results.events()
    except AttributeError:  # the profiler's internals moved: say "unknown" rather than guess
        return None
    allocations = _cpu_allocations(events)
    live = peak = 0
    for _, nbytes in allocations:
        live += nbytes
        peak = max(peak, live)
    return peak


def _cpu_allocations(events):
    """(timestamp, +bytes allocated / -bytes freed) of every CPU allocation event, in time order."""
    cpu = torch.autograd.DeviceType.CPU
    allocations = [(e.start_ns(), e.nbytes()) for e in events
                   if e.name() == "[memory]" and e.device_type() == cpu]
    return sorted(allocations, key=lambda item: item[0])  # stable: ties keep the recorded order
