"""Argument checks shared by the kernel entry point and the reference (docs/contract.md, Bad input).

Every misuse becomes a ValueError / TypeError that names the argument, before any kernel runs.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional

import torch

from .integers import as_int, as_int_list
from .layout import check_module_sizes, check_periods, split_evenly

NONLINEARITIES = ("tanh", "relu")


class Arguments(NamedTuple):
    periods: List[int]
    module_sizes: List[int]
    t0: int
    nonlinearity: str
    lengths: Optional[torch.Tensor]


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


def _check_tensor(value, name, ndim):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(value.shape)}")


INT64_MAX = 2 ** 63 - 1


def check_clock(value, name: str = "t0") -> int:
    """A clock value: an int in [0, 2**63) (integers.as_int says which types count as ints)."""
    value = as_int(value, name)
    if not 0 <= value <= INT64_MAX:
        raise ValueError(f"{name} must be in [0, 2**63 - 1], got {value}")
    return value


def check_clocks_fit(t0: int, steps: int, name: str = "t0") -> None:
    """Steps run at clocks t0 .. t0 + steps - 1, which must all be at most 2**63 - 1 (the kernels
    count clocks in int64)."""
    if steps > 0 and t0 > INT64_MAX - (steps - 1):
        raise ValueError(f"{name} = {t0} with {steps} steps puts the last step's clock at "
                         f"{t0 + steps - 1}, past 2**63 - 1 (the largest clock); use a smaller {name}")


def check_arguments(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods, module_sizes,
                    t0, nonlinearity, lengths, same_dtype: bool = True) -> Arguments:
    _check_tensor(input, "input", 3)
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {input.dtype}")
    steps, batch, input_size = input.shape
    _check_tensor(weight_hh, "weight_hh", 2)
    hidden = weight_hh.shape[0]
    if weight_hh.shape != (hidden, hidden):
        raise ValueError(f"weight_hh must be square (H, H), got shape {tuple(weight_hh.shape)}")
    _check_tensor(weight_ih, "weight_ih", 2)
    if weight_ih.shape != (hidden, input_size):
        raise ValueError(f"weight_ih must have shape (hidden_size, input_size) = {(hidden, input_size)} "
                         f"(input has {input_size} features), got {tuple(weight_ih.shape)}")
    named = [("weight_ih", weight_ih), ("weight_hh", weight_hh)]
    for name, bias in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
        if bias is not None:
            _check_tensor(bias, name, 1)
            if bias.shape[0] != hidden:
                raise ValueError(f"{name} must have shape ({hidden},), got {tuple(bias.shape)}")
            named.append((name, bias))
    if hx is not None:
        _check_tensor(hx, "hx", 2)
        if hx.shape != (batch, hidden):
            raise ValueError(f"hx must have shape (batch, hidden_size) = {(batch, hidden)}, "
                             f"got {tuple(hx.shape)}")
        named.append(("hx", hx))
    for name, tensor in named:
        if same_dtype and tensor.dtype != input.dtype:
            raise TypeError(f"{name} has dtype {tensor.dtype} but input has dtype {input.dtype}; "
                            f"all tensors must share one dtype")
        if tensor.device != input.device:
            raise ValueError(f"{name} is on {tensor.device} but input is on {input.device}; "
                             f"all tensors must be on one device")

    periods = check_periods(periods)
    if module_sizes is None:
        if hidden < len(periods):
            raise ValueError(f"hidden_size={hidden} is smaller than the number of modules ({len(periods)})")
        module_sizes = split_evenly(hidden, len(periods))
    module_sizes = check_module_sizes(module_sizes, len(periods), hidden)

    t0 = check_clock(t0)
    check_clocks_fit(t0, steps)
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    lengths = check_lengths(lengths, steps, batch)
    return Arguments(periods, module_sizes, t0, nonlinearity, lengths)


def check_lengths(lengths, steps: int, batch: int) -> Optional[torch.Tensor]:
    """lengths: None, or B integer lengths in [0, T] (a tensor on any device, or a sequence)."""
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.tensor(as_int_list(lengths, "lengths"), dtype=torch.int64)
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths must have shape (batch,) = ({batch},), got {tuple(lengths.shape)}")
    lengths = lengths.to(torch.int64)
    if _is_compiling() or batch == 0:
        return lengths  # data-dependent, so not while tracing; the C++ kernels check it again
    if lengths.device.type != "cpu":
        # Reading GPU values back would stall the stream (and break CUDA-graph capture): check
        # on the device instead. A failure there is a device-side assertion, as for indexing
        # errors in PyTorch; keep lengths on the CPU (as pack_padded_sequence does) for a
        # Python exception. The kernels clamp them, so nothing is read out of bounds either way.
        torch._assert_async(((lengths >= 0) & (lengths <= steps)).all(),
                            f"lengths must lie in [0, {steps}] (the sequence length)")
        return lengths
    low, high = int(lengths.min()), int(lengths.max())
    if low < 0 or high > steps:
        raise ValueError(f"lengths must lie in [0, {steps}] (the sequence length), "
                         f"got values from {low} to {high}")
    return lengths
