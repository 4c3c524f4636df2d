"""One Clockwork RNN step at a time: the Python side of the `step` op and its clock arguments.

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
from .functional import clockwork_rnn


def step_kernel_supports(device: torch.device, dtype: torch.dtype) -> bool:
    return ops.kernel_supports(device, dtype, op="step")


# Resolved once: looking the op up through torch.ops on every step costs a few microseconds.
_STEP_OP = torch.ops.cwrnn_ext.step.default if ops.KERNELS_LOADED else None
_CPU_STEP_DTYPES = frozenset(ops.kernel_dtypes("step", "cpu"))


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
