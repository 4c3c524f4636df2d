"""The Clockwork RNN in plain PyTorch: the executable definition the kernels are held to.

Time-major, one layer, gradients by autograd. It computes every module at every step and then
keeps only what the paper keeps, so it is slow on purpose and easy to check against the paper:

    active_i(t)  =  t % T_i == 0
    h_t[i]       =  f(W_ih[i] x_t + b_ih[i] + b_hh[i] + sum_{j: T_j >= T_i} W_hh[i, j] h_{t-1}[j])
                        if active_i(t)
                 =  h_{t-1}[i]   otherwise (a hold: no input, no bias, no nonlinearity)
"""
from __future__ import annotations

import torch

from .arguments import check_arguments
from .layout import allowed_mask, unit_periods


def clockwork_rnn(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                  module_sizes=None, t0=0, nonlinearity="tanh", lengths=None):
    """Run one Clockwork RNN layer over `input` (T, B, I). Returns (output (T, B, H), h_n (B, H))."""
    args = check_arguments(input, hx, weight_ih, weight_hh, bias_ih, bias_hh, periods,
                           module_sizes, t0, nonlinearity, lengths)
    steps, batch, hidden = input.shape[0], input.shape[1], weight_hh.shape[0]
    f = torch.tanh if args.nonlinearity == "tanh" else torch.relu

    # Blocks from faster to slower modules do not exist: select, never multiply, so that even a
    # NaN stored there is never read and its gradient is exactly zero.
    recurrent = torch.where(allowed_mask(args.periods, args.module_sizes, weight_hh.device),
                            weight_hh, torch.zeros((), dtype=weight_hh.dtype, device=weight_hh.device))
    period_of_unit = unit_periods(args.periods, args.module_sizes, input.device)

    h = hx if hx is not None else input.new_zeros(batch, hidden)
    outputs = []
    for step in range(steps):
        t = args.t0 + step
        active = (t % period_of_unit == 0)  # (H,)
        x = input[step]
        if args.lengths is not None:
            # Padding is never read: selected away before any arithmetic, so that NaN or inf in
            # it cannot reach a gradient through 0 * NaN (it would through f'(NaN) * 0).
            valid = (step < args.lengths).to(input.device)[:, None]
            x = torch.where(valid, x, torch.zeros((), dtype=x.dtype, device=x.device))
        pre = x @ weight_ih.t() + h @ recurrent.t()
        if bias_ih is not None:
            pre = pre + bias_ih
        if bias_hh is not None:
            pre = pre + bias_hh
        h_next = torch.where(active, f(pre), h)
        if args.lengths is not None:
            # Past its length a sequence stops: the state stays, the output row is zero.
            h_next = torch.where(valid, h_next, h)
            outputs.append(torch.where(valid, h_next, torch.zeros_like(h_next)))
        else:
            outputs.append(h_next)
        h = h_next
    output = torch.stack(outputs) if outputs else input.new_zeros(0, batch, hidden)
    return output, h
