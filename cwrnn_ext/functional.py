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


def clockwork_rnn(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                  module_sizes=None, t0=0, nonlinearity="tanh", lengths=None):
    """One Clockwork RNN layer over time-major `input` (T, B, I).

    Returns (output (T, B, H), h_n (B, H)). Semantics: docs/contract.md and `reference.py`.
    """
    return _run_layer("forward", input, hx, weight_ih, weight_hh, bias_ih, bias_hh,
                      periods, module_sizes, t0, nonlinearity, lengths)


def clockwork_rnn_time_major(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                             module_sizes=None, t0=0, nonlinearity="tanh", lengths=None):
    """`clockwork_rnn` computed one step after another by the CPU step kernel: the same results
    and gradients, faster for short sequences (see cwrnn_ext.step.time_major_wins). Other
    devices run `clockwork_rnn`'s kernel."""
    op = "forward_time_major" if input.device.type == "cpu" else "forward"
    return _run_layer(op, input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods, module_sizes,
                      t0, nonlinearity, lengths)


def _run_layer(op: str, input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods, module_sizes,
               t0, nonlinearity, lengths):
    args = check_arguments(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                           module_sizes, t0, nonlinearity, lengths)
    if not ops.kernel_supports(input.device, input.dtype):
        if not ops.KERNELS_LOADED:
            _warn_fallback_once(f"the compiled extension did not load ({ops.LOAD_ERROR})")
        elif input.device.type == "cuda" and not ops.cuda_kernels_available():
            _warn_fallback_once("the CUDA kernels were not compiled into this build")
        else:
            raise TypeError(f"input dtype {input.dtype} is not supported on {input.device.type} "
                            f"(supported: {[str(d) for d in ops.KERNEL_DTYPES.get(input.device.type, ())]})")
        return reference.clockwork_rnn(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, args.periods,
                                       args.module_sizes, args.t0, args.nonlinearity, args.lengths)

    steps, batch, hidden = input.shape[0], input.shape[1], weight_hh.shape[0]
    if hx is None:
        hx = input.new_zeros(batch, hidden)
    bias = bias_ih if bias_hh is None else (bias_hh if bias_ih is None else bias_ih + bias_hh)
    lengths = None if args.lengths is None else args.lengths.to(input.device)
    return getattr(torch.ops.cwrnn_ext, op)(input, hx, weight_ih, weight_hh, bias, args.periods,
                                            args.module_sizes, args.t0, args.nonlinearity == "relu",
                                            lengths)
