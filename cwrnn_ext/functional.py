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


def _autocast(device_type, *tensors):
    """Inside torch.autocast the layer runs in the region's lower-precision dtype, as nn.RNN does:
    float32 (and other half-type) tensors on that device are cast to it, float64 ones are left
    alone, as autocast leaves them. (The op's own autocast kernel does the same for direct calls.)"""
    try:
        dtype = torch.get_autocast_dtype(device_type)
    except AttributeError:  # torch < 2.4
        dtype = torch.get_autocast_cpu_dtype() if device_type == "cpu" else torch.get_autocast_gpu_dtype()

    def cast(t):
        eligible = (isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64
                    and t.device.type == device_type)
        return t.to(dtype) if eligible else t

    return tuple(cast(t) for t in tensors)


def clockwork_rnn(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                  module_sizes=None, t0=0, nonlinearity="tanh", lengths=None):
    """One Clockwork RNN layer over time-major `input` (T, B, I).

    Returns (output (T, B, H), h_n (B, H)). Semantics: docs/contract.md and `reference.py`.
    On the CPU the kernel itself chooses how to run the sequence (step after step for short
    ones, module after module for long ones); the results are the same.
    """
    if isinstance(input, torch.Tensor) and _autocast_enabled(input.device.type):
        input, hx, weight_ih, weight_hh, bias_ih, bias_hh = _autocast(
            input.device.type, input, hx, weight_ih, weight_hh, bias_ih, bias_hh)
    args = check_arguments(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                           module_sizes, t0, nonlinearity, lengths)
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
