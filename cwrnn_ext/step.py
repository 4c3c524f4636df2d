"""One Clockwork RNN step at a time: the Python side of the `step` op, its clock arguments, and
the choice between the two schedules for a sequence.

The step op computes only the rows of the modules that are active at the clock value of each
row, reading their allowed columns; the other rows hold. `ClockworkRNNCell` and `Stream` call it
through `run_step`, whose arguments the caller has checked (the cell validates its layout once,
at construction, so a step costs one op call).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from . import ops
from .arguments import _is_compiling, check_clock
from .functional import clockwork_rnn, clockwork_rnn_time_major


# Dtypes of the step kernels (the CPU step kernel and forward_time_major: float32 and float64).
STEP_KERNEL_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float32, torch.float64, torch.float16, torch.bfloat16),
}


def step_kernel_supports(device: torch.device, dtype: torch.dtype) -> bool:
    return ops.kernel_supports(device, dtype) and dtype in STEP_KERNEL_DTYPES.get(device.type, ())


# Resolved once: looking the op up through torch.ops on every step costs a few microseconds.
_STEP_OP = torch.ops.cwrnn_ext.step.default if ops.KERNELS_LOADED else None
_CPU_STEP_DTYPES = frozenset(STEP_KERNEL_DTYPES["cpu"]) if ops.KERNELS_LOADED else frozenset()


def check_clock_tensor(t, name: str, batch: int, device: torch.device,
                       check_values: bool = True) -> torch.Tensor:
    """Clocks per row: an integer tensor of shape (batch,) on `device`, values >= 0. Returns it
    as int64. `check_values=False` leaves the values to the CPU kernel (which checks them, at no
    cost to the call) instead of reading them here."""
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise TypeError(f"{name} must be an int or an integer tensor of clocks, one per row; "
                        f"got a tensor of dtype {t.dtype}")
    if t.dim() != 1 or t.shape[0] != batch:
        raise ValueError(f"{name} as a tensor must have shape (batch,) = ({batch},), one clock per "
                         f"row, got shape {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but input is on {device}; the clocks must be on "
                         f"the input's device")
    if t.dtype != torch.int64:
        t = t.to(torch.int64)
    if check_values and batch > 0 and not _is_compiling() and int(t.min()) < 0:
        raise ValueError(f"{name} must be >= 0 in every row, got {t.tolist()}")
    return t


def step_clock(t, batch: int, device: torch.device, unbatched: bool,
               kernel_checks_clocks: bool) -> Tuple[int, Optional[torch.Tensor]]:
    """(t, clocks) for the step op from a user's `t`: an int (or 0-d integer tensor) for every
    row, or an integer tensor (batch,) giving each row its own clock (batched input only).
    `kernel_checks_clocks`: the CPU kernel will run, and it checks the clocks' values itself."""
    if isinstance(t, torch.Tensor) and (t.dtype == torch.bool or t.is_floating_point() or t.is_complex()):
        raise TypeError(f"t must be an int or an integer tensor, got a tensor of dtype {t.dtype}")
    if isinstance(t, torch.Tensor) and (t.dim() > 0 or t.device.type != "cpu"):
        if unbatched and t.dim() > 0:
            raise ValueError(f"t must be an int or a 0-d tensor for unbatched input, got shape "
                             f"{tuple(t.shape)}")
        if t.dim() == 0:  # one clock on a GPU: compared there rather than read (no host sync)
            t = t.expand(batch)
        return 0, check_clock_tensor(t, "t", batch, device, check_values=not kernel_checks_clocks)
    return check_clock(t, "t"), None


def run_step(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods, module_sizes,
             t: int, clocks: Optional[torch.Tensor], nonlinearity: str):
    """h_next (B, H) for input (B, I) and hx (B, H): the kernel when there is one for the tensors'
    device and dtype, else the reference (as `clockwork_rnn` decides, warning once)."""
    if (input.is_cpu and input.dtype in _CPU_STEP_DTYPES) or step_kernel_supports(input.device, input.dtype):
        if input.is_cuda:
            ops.warn_cuda_unvalidated_once()
        return _STEP_OP(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods, module_sizes, t,
                        clocks, nonlinearity)
    # No kernel: one-step sequences through clockwork_rnn's fallback, one per row when the rows'
    # clocks differ (slow, as every fallback is).
    if clocks is None:
        return clockwork_rnn(input.unsqueeze(0), hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                             module_sizes, t, nonlinearity)[1]
    rows = [clockwork_rnn(input[b:b + 1].unsqueeze(0), hx[b:b + 1], weight_ih, weight_hh, bias_ih,
                          bias_hh, periods, module_sizes, t + int(clocks[b]), nonlinearity)[1]
            for b in range(input.shape[0])]
    return torch.cat(rows) if rows else hx.clone()


# ---------------------------------------------------------------------------------------------
# Which schedule runs a sequence. The module-major schedule has a fixed cost per call (per
# group: a gather, GEMMs, a recurrence, a held term) that a long sequence amortises and a short
# one does not; the time-major kernel costs about one step's work per step and almost nothing
# per call, but reads each weight row once per step instead of once per group and call.
#
# Measured on the CPU (2026-12-01, Intel Xeon VM, 2 cores, float32, 8 exponential modules, forward
# under no_grad, `python -m benchmarks.streaming --sections crossover`): the longest sequence at
# which time-major still wins is
#     B=1:  T=128 at H=256, 64 at H=512, 32 at H=1024   (1 and 2 threads, I=16 and I=64)
#     B=4:  T=64, 32, 16;  B=8: T=64, 16, 8             (1 thread, I=16)
#     B=32: T=16, 4-8, 2-4                              (1 and 2 threads, I=16 and I=64)
# i.e. T * H is constant for a batch size and the limit falls about as B**0.6. Near the limit
# the two schedules are within 10-20% of each other, so the rule need not be sharper.
# ---------------------------------------------------------------------------------------------

# Time-major when time_major_cost(...) is at most this.
TIME_MAJOR_MAX_COST = 32768


def time_major_cost(steps: int, batch: int, hidden: int) -> float:
    """The crossover rule's measure of a sequence: steps * hidden * batch**0.6."""
    return steps * hidden * max(batch, 1) ** 0.6


def time_major_wins(steps: int, batch: int, hidden: int, device: torch.device) -> bool:
    """Whether the time-major kernel runs a sequence of this shape faster than module-major
    (CPU only: CUDA has no time-major sequence kernel)."""
    # One step is all time-major's own work: the module-major schedule adds its setup to the same.
    return device.type == "cpu" and (steps <= 1 or time_major_cost(steps, batch, hidden) <= TIME_MAJOR_MAX_COST)


def sequence_forward(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods, module_sizes,
                     t0, nonlinearity, lengths):
    """One layer over a time-major sequence with the faster schedule for its shape; the
    gradients are the same op's either way (module-major backward)."""
    steps, batch = input.shape[0], input.shape[1]
    if (time_major_wins(steps, batch, weight_hh.shape[0], input.device)
            and step_kernel_supports(input.device, input.dtype)):
        return clockwork_rnn_time_major(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                                        module_sizes, t0, nonlinearity, lengths)
    return clockwork_rnn(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods, module_sizes,
                         t0, nonlinearity, lengths)
