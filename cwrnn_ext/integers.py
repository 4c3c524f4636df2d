"""The one rule for integer arguments: clocks, periods, module sizes, lengths and layer sizes.

Accepted alike: a Python int, a NumPy integer scalar, and a one-element integer tensor.
Refused with a TypeError that names the argument: bools of every kind (Python, NumPy, bool
tensors), because `t0=True` or `periods=[True, 2]` is a mistake rather than a clock or a size,
and floats, even integral ones (as torch.nn.RNN refuses hidden_size=4.0).
Range checks (positive, below 2**63, ...) stay with each argument's own check.
"""
from __future__ import annotations

import operator
from typing import List

import torch


def as_int(value, name: str) -> int:
    """`value` as a Python int, or a TypeError naming `name`."""
    # Plain ints first, without calling into them: torch.compile treats them as constants, and
    # torch 2.4's dynamo cannot trace `int.__index__`.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_floating_point() or value.is_complex() or value.numel() != 1:
            raise TypeError(f"{name} must be an int or a one-element integer tensor, got a tensor of "
                            f"dtype {value.dtype} and shape {tuple(value.shape)}")
        return int(value.item())
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", None) == "b":
        # NumPy bools have no __index__ in NumPy 2 but a deprecated one in NumPy 1.
        raise TypeError(f"{name} must be an int, got a bool ({value!r})")
    try:
        return operator.index(value)  # NumPy integer scalars (and anything else that is an index)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None


def as_int_list(values, name: str) -> List[int]:
    """A sequence (list, tuple, NumPy array, 1-D tensor) of integers as a list of Python ints; a
    bad item's error names its index (`periods[1] must be an int, got float 2.0`)."""
    try:
        items = list(values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {type(values).__name__}") from None
    return [as_int(item, f"{name}[{i}]") for i, item in enumerate(items)]
