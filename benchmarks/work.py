"""Counting: multiply-adds per sequence, the theoretical work ratio, parameter counts.

The work count follows docs/design.md (The work count) but is exact rather than averaged: it walks the actual
clock (t = t0, t0 + 1, ...) and, at every step, charges each active module its rows times
(input size + the columns it may read). Biases and nonlinearities are not counted.
"""
from __future__ import annotations

import math
from typing import Sequence


def allowed_columns(periods: Sequence[int], module_sizes: Sequence[int], module: int) -> int:
    """Columns of weight_hh that module `module` reads: every module at least as slow as it."""
    return sum(size for period, size in zip(periods, module_sizes) if period >= periods[module])


def cwrnn_macs(periods: Sequence[int], module_sizes: Sequence[int], input_size: int, steps: int,
               batch: int = 1, t0: int = 0) -> int:
    """Multiply-adds of one CW-RNN layer over `steps` steps (only active modules' rows)."""
    return batch * sum(count_ticks(period, steps, t0) * size * (input_size + allowed_columns(periods, module_sizes, i))
                       for i, (period, size) in enumerate(zip(periods, module_sizes)))


def count_ticks(period: int, steps: int, t0: int = 0) -> int:
    """How many t in [t0, t0 + steps) satisfy t % period == 0 (multiples below the end, less those below t0)."""
    return (t0 + steps + period - 1) // period - (t0 + period - 1) // period


def kernel_macs(periods: Sequence[int], module_sizes: Sequence[int], input_size: int, steps: int,
                batch: int = 1) -> int:
    """Multiply-adds the kernel's module-major schedule does in one forward pass (t0 = 0), fewer than
    cwrnn_macs (docs/design.md, Held terms): each group's ticks read the input and its own diagonal
    block, and each value a group holds (the initial state and its state after every tick) is
    multiplied once by its block column, for the faster groups that read it. Groups must run from
    fastest to slowest (exponential periods do)."""
    total, faster_units = 0, 0
    for period, size in zip(periods, module_sizes):
        ticks = count_ticks(period, steps)
        total += ticks * size * (input_size + size) + (ticks + 1) * faster_units * size
        faster_units += size
    return batch * total


def srn_macs(input_size: int, hidden_size: int, steps: int, batch: int = 1) -> int:
    """Multiply-adds of a simple RNN (nn.RNN) layer: B (I H + H H) per step."""
    return batch * steps * (input_size * hidden_size + hidden_size * hidden_size)


def work_ratio(periods: Sequence[int], module_sizes: Sequence[int], input_size: int, steps: int,
               t0: int = 0) -> float:
    """SRN work / CW-RNN work at the same hidden size: the speed-up an ideal kernel would get."""
    hidden = sum(module_sizes)
    return srn_macs(input_size, hidden, steps) / cwrnn_macs(periods, module_sizes, input_size, steps, t0=t0)


def cwrnn_parameter_count(periods: Sequence[int], module_sizes: Sequence[int], input_size: int,
                          bias: bool = True) -> int:
    """Trainable entries: allowed blocks of weight_hh + weight_ih (+ bias_ih and bias_hh)."""
    hidden = sum(module_sizes)
    recurrent = sum(size * allowed_columns(periods, module_sizes, i) for i, size in enumerate(module_sizes))
    return recurrent + hidden * input_size + (2 * hidden if bias else 0)


def lstm_parameter_count(input_size: int, hidden_size: int) -> int:
    """nn.LSTM, one layer with biases: 4 gates of (I + H) weights and two biases per unit."""
    return 4 * hidden_size * (input_size + hidden_size + 2)


def lstm_hidden_for_params(parameters: int, input_size: int) -> int:
    """The LSTM hidden size whose parameter count is closest to `parameters`.

    Solves 4 h^2 + 4 (I + 2) h = P for h, then picks the better of the two neighbouring integers.
    """
    b = input_size + 2
    root = (-b + math.sqrt(b * b + parameters)) / 2
    candidates = {max(1, math.floor(root)), max(1, math.ceil(root))}
    return min(sorted(candidates), key=lambda h: abs(lstm_parameter_count(input_size, h) - parameters))
