"""`clockwork_rnn`: one layer through the compiled kernel for the tensors' device."""
from __future__ import annotations

import warnings

import torch

from . import ops, reference
from .arguments import check_arguments

_warned = False


def _warn_fallback_once(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"cwrnn_ext: {reason}; using the (slow) pure-PyTorch reference implementation",
                      RuntimeWarning, stacklevel=4)


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 has one function per device
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def clockwork_rnn(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                  module_sizes=None, t0=0, nonlinearity="tanh", lengths=None):
    """One Clockwork RNN layer over time-major `input` (T, B, I).

    Returns (output (T, B, H), h_n (B, H)). Semantics: docs/contract.md and `reference.py`.
    On the CPU the kernel itself chooses how to run the sequence (step after step for short
    ones, module after module for long ones); the results are the same.
    """
    # Inside torch.autocast the tensors may differ in dtype: the op's autocast kernel
    # (csrc/autocast.cpp, the one autocast policy) casts them, as nn.RNN's are cast, and its C++
    # checks then see one dtype; the reference fallback follows autocast through ATen's own ops.
    autocast = isinstance(input, torch.Tensor) and _autocast_enabled(input.device.type)
    args = check_arguments(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                           module_sizes, t0, nonlinearity, lengths, same_dtype=not autocast)
    if not ops.kernel_supports(input.device, input.dtype):
        if not ops.KERNELS_LOADED:
            _warn_fallback_once(f"the compiled extension did not load ({ops.LOAD_ERROR})")
        elif input.device.type == "cuda" and not ops.cuda_kernels_available():
            _warn_fallback_once("the CUDA kernels were not compiled into this build")
        else:
            raise TypeError(f"input dtype {input.dtype} is not supported on {input.device.type} "
                            f"(supported: {[str(d) for d in ops.kernel_dtypes('sequence', input.device.type)]})")
        return reference.clockwork_rnn(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, args.periods,
                                       args.module_sizes, args.t0, args.nonlinearity, args.lengths)

    if input.device.type == "cuda":
        ops.warn_cuda_unvalidated_once()
    if hx is None:
        hx = input.new_zeros(input.shape[1], weight_hh.shape[0])
    bias = bias_ih if bias_hh is None else (bias_hh if bias_ih is None else bias_ih + bias_hh)
    lengths = None if args.lengths is None else args.lengths.to(input.device)
    return torch.ops.cwrnn_ext.forward(input, hx, weight_ih, weight_hh, bias, args.periods,
                                       args.module_sizes, args.t0, args.nonlinearity, lengths)
