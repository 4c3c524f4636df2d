"""How the hidden state is split into clocked modules: periods, module sizes, connectivity.

Everything here is plain Python on small lists; the kernels receive the checked lists.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch

from .integers import as_int, as_int_list


def exponential_periods(num_modules: int) -> List[int]:
    """The paper's clock periods 1, 2, 4, ..., 2**(g-1)."""
    return [2 ** i for i in range(num_modules)]


def split_evenly(hidden_size: int, num_modules: int) -> List[int]:
    """Sizes as even as possible, the remainder going to the fastest (first) modules."""
    base, extra = divmod(hidden_size, num_modules)
    return [base + (1 if i < extra else 0) for i in range(num_modules)]


def resolve_layout(hidden_size: int, periods: Optional[Sequence[int]] = None,
                   num_modules: Optional[int] = None,
                   module_sizes: Optional[Sequence[int]] = None):
    """Check and complete (periods, module_sizes) for a layer of `hidden_size` units."""
    hidden_size = as_int(hidden_size, "hidden_size")
    if hidden_size <= 0:
        raise ValueError(f"hidden_size must be a positive int, got {hidden_size!r}")
    if num_modules is not None:
        num_modules = as_int(num_modules, "num_modules")
    if periods is None:
        if num_modules is None:
            num_modules = len(module_sizes) if module_sizes is not None else min(8, hidden_size)
        if num_modules <= 0:
            raise ValueError(f"num_modules must be a positive int, got {num_modules!r}")
        periods = exponential_periods(num_modules)
    periods = check_periods(periods)
    if num_modules is not None and num_modules != len(periods):
        raise ValueError(f"num_modules={num_modules} does not match len(periods)={len(periods)}")
    if hidden_size < len(periods):
        raise ValueError(f"hidden_size={hidden_size} is smaller than the number of modules "
                         f"({len(periods)}); every module needs at least one unit")
    if module_sizes is None:
        module_sizes = split_evenly(hidden_size, len(periods))
    module_sizes = check_module_sizes(module_sizes, len(periods), hidden_size)
    return periods, module_sizes


def check_periods(periods: Sequence[int]) -> List[int]:
    periods = as_int_list(periods, "periods")
    if len(periods) == 0:
        raise ValueError("periods must name at least one module")
    for i, period in enumerate(periods):
        if not 0 < period < 2 ** 63:
            raise ValueError(f"periods[{i}] must be a positive int below 2**63, got {period}")
    for i in range(1, len(periods)):
        if periods[i - 1] > periods[i]:
            raise ValueError(f"periods must be sorted non-decreasing (fastest first), got {periods}: "
                             f"periods[{i - 1}] = {periods[i - 1]} > periods[{i}] = {periods[i]}")
    return periods


def check_module_sizes(module_sizes: Sequence[int], num_modules: int, hidden_size: int) -> List[int]:
    sizes = as_int_list(module_sizes, "module_sizes")
    if len(sizes) != num_modules:
        raise ValueError(f"module_sizes has {len(sizes)} entries but there are {num_modules} "
                         f"modules (one per period)")
    if any(k <= 0 for k in sizes):
        raise ValueError(f"module_sizes must be positive ints, got {sizes}")
    if sum(sizes) != hidden_size:
        raise ValueError(f"module_sizes {sizes} sum to {sum(sizes)}, expected hidden_size={hidden_size}")
    return sizes


def unit_periods(periods: Sequence[int], module_sizes: Sequence[int], device=None) -> torch.Tensor:
    """The clock period of every hidden unit, shape (H,)."""
    return torch.repeat_interleave(torch.tensor(list(periods), device=device),
                                   torch.tensor(list(module_sizes), device=device))


def allowed_mask(periods: Sequence[int], module_sizes: Sequence[int], device=None) -> torch.Tensor:
    """Boolean (H, H): entry [r, c] is True iff unit c's module may feed unit r's module.

    Module j feeds module i iff T_j >= T_i: slower (or equal) modules feed faster ones.
    """
    per_unit = unit_periods(periods, module_sizes, device)
    return per_unit[None, :] >= per_unit[:, None]
