"""`ClockworkRNN` and `ClockworkRNNCell`: drop-in relatives of `nn.RNN` and `nn.RNNCell`."""
from __future__ import annotations

import math
import warnings
from typing import List, Optional, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .arguments import INT64_MAX, NONLINEARITIES, check_lengths
from .functional import _autocast_enabled, clockwork_rnn
from .integers import as_int
from .layout import allowed_mask, resolve_layout
from .step import run_step, step_clock, step_kernel_supports


def _check_int(value, name: str, minimum: int) -> int:
    value = as_int(value, name)
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_input_dtype(input: torch.Tensor, weight: torch.Tensor, allow_autocast: bool = True) -> None:
    """As nn.RNN: the input must have the weights' dtype, except inside torch.autocast (which
    casts both) when `allow_autocast`. The message says both ways to fix it."""
    if input.dtype == weight.dtype or (allow_autocast and _autocast_enabled(input.device.type)):
        return
    raise ValueError(f"input must have the type {weight.dtype} (the weights' dtype), got type {input.dtype}: "
                     f"convert the input with .to({weight.dtype}) or the model with .to({input.dtype})")


class _ClockworkBase(nn.Module):
    """Layout, parameters and their initialisation, shared by the layer and the cell."""

    def _setup(self, input_size, hidden_size, periods, num_modules, module_sizes, nonlinearity, bias):
        self.input_size = _check_int(input_size, "input_size", 0)
        self.hidden_size = _check_int(hidden_size, "hidden_size", 1)
        self.periods, self.module_sizes = resolve_layout(self.hidden_size, periods, num_modules, module_sizes)
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.bias = bool(bias)

    def _add_layer_parameters(self, suffix: str, input_size: int, factory) -> None:
        hidden = self.hidden_size
        self.register_parameter("weight_ih" + suffix, nn.Parameter(torch.empty(hidden, input_size, **factory)))
        self.register_parameter("weight_hh" + suffix, nn.Parameter(torch.empty(hidden, hidden, **factory)))
        if self.bias:
            self.register_parameter("bias_ih" + suffix, nn.Parameter(torch.empty(hidden, **factory)))
            self.register_parameter("bias_hh" + suffix, nn.Parameter(torch.empty(hidden, **factory)))

    @property
    def num_modules(self) -> int:
        return len(self.periods)

    def reset_parameters(self) -> None:
        """As nn.RNN: uniform in +-1/sqrt(H); then the disallowed blocks of weight_hh are zeroed."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for name, weight in self.named_parameters():
                weight.uniform_(-bound, bound)
                if name.startswith("weight_hh"):
                    weight.masked_fill_(~allowed_mask(self.periods, self.module_sizes, weight.device), 0)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}, periods={self.periods}, module_sizes={self.module_sizes}"
        if self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        if not self.bias:
            text += ", bias=False"
        return text


def _reverse_within_lengths(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    """x (T, B, ...) with the first lengths[b] steps of every sequence b in reverse order; the
    padding stays where it is. Applying it twice gives x back."""
    if lengths is None:
        return x.flip(0)
    steps = torch.arange(x.shape[0], device=x.device).unsqueeze(1)  # (T, 1)
    length = lengths.to(x.device).unsqueeze(0)  # (1, B)
    index = torch.where(steps < length, length - 1 - steps, steps)  # (T, B)
    return x.gather(0, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


class ClockworkRNN(_ClockworkBase):
    """A (multi-layer, optionally bidirectional) Clockwork RNN. Parameters and calling convention
    follow `nn.RNN`: the positional arguments are nn.RNN's, in its order; the Clockwork layout
    (periods, num_modules, module_sizes) is keyword-only. See docs/contract.md.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, *,
                 periods: Optional[Sequence[int]] = None, num_modules: Optional[int] = None,
                 module_sizes: Optional[Sequence[int]] = None, device=None, dtype=None):
        super().__init__()
        self._setup(input_size, hidden_size, periods, num_modules, module_sizes, nonlinearity, bias)
        self.num_layers = _check_int(num_layers, "num_layers", 1)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1:
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        if dropout > 0 and self.num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero "
                          f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={self.num_layers}", UserWarning, stacklevel=2)
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        factory = {"device": device, "dtype": dtype}
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.hidden_size * self.num_directions
            for suffix in self._direction_suffixes:
                self._add_layer_parameters(f"_l{layer}{suffix}", layer_input, factory)
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _direction_suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    def _layer_parameters(self, layer: int, suffix: str = ""):
        get = lambda name: getattr(self, f"{name}_l{layer}{suffix}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    @property
    def all_weights(self) -> List[List[nn.Parameter]]:
        """As nn.RNN: per layer and direction (layer 0, layer 0 reverse, layer 1, ...) the list
        [weight_ih, weight_hh, bias_ih, bias_hh], without the biases when bias=False."""
        return [[w for w in self._layer_parameters(layer, suffix) if w is not None]
                for layer in range(self.num_layers) for suffix in self._direction_suffixes]

    def flatten_parameters(self) -> None:
        """A no-op, as nn.RNN's is on the CPU: the kernels read the parameters where they are."""

    def forward(self, input, hx=None, t0: int = 0, lengths=None):
        """Runs the layers over a sequence: `(output, h_n)`, as nn.RNN.

        input: (T, B, input_size), (B, T, input_size) when batch_first, unbatched (T, input_size),
            or a PackedSequence (then output is one, packed the same way). Its dtype must be the
            weights' (outside torch.autocast).
        hx: the initial state of every layer and direction, (num_layers * num_directions, B,
            hidden_size), or (num_layers * num_directions, hidden_size) unbatched; default zeros.
        t0: the clock value of the first step, an int in [0, 2**63 - 1], one for the whole batch;
            module i is active at clock t iff t % periods[i] == 0, and the last step's clock,
            t0 + T - 1, must not pass 2**63 - 1. To run a sequence in chunks, pass the previous
            chunk's h_n as hx and the number of steps already consumed as t0.
        lengths: optional valid lengths (B,) of right-padded sequences (not with a PackedSequence):
            past its length a sequence's output rows are 0 and its state stays.

        output: the last layer's state after every step, shaped like input with hidden_size
        features (2 * hidden_size when bidirectional: forward, then reverse, in input time order).
        h_n: the final states, (num_layers * num_directions, B, hidden_size), in nn.RNN's order.
        The reverse direction runs every sequence backwards from its last valid step, whose clock
        value is t0.
        """
        packed = isinstance(input, PackedSequence)
        if packed:
            if lengths is not None:
                raise ValueError("lengths must be None when input is a PackedSequence (it has its own)")
            packed_input = input
            input, lengths = pad_packed_sequence(packed_input)  # (T, B, I), original batch order
        elif not isinstance(input, torch.Tensor):
            raise TypeError(f"input must be a Tensor or PackedSequence, got {type(input).__name__}")
        elif input.dim() not in (2, 3):
            raise ValueError(f"input must be 2-D (T, I) unbatched or 3-D batched, got shape {tuple(input.shape)}")

        unbatched = not packed and input.dim() == 2
        if unbatched:
            if lengths is not None:
                raise ValueError("lengths is only meaningful for batched input")
            input = input.unsqueeze(1)
        elif self.batch_first and not packed:
            input = input.transpose(0, 1)
        if input.shape[-1] != self.input_size:
            raise ValueError(f"input has {input.shape[-1]} features, expected input_size={self.input_size}")
        check_input_dtype(input, self.weight_ih_l0)
        hx = self._check_hx(hx, input, unbatched)
        if isinstance(t0, torch.Tensor) and t0.numel() > 1:
            raise TypeError(f"t0 must be an int: one clock for the whole batch, got a tensor of shape "
                            f"{tuple(t0.shape)}; per-row clocks are taken by ClockworkRNNCell(t=...) "
                            f"and cwrnn_ext.Stream")
        if self.bidirectional:  # the reversal needs the lengths as a tensor
            lengths = check_lengths(lengths, input.shape[0], input.shape[1])

        def run_direction(layer_input, state, parameters, reverse):
            if reverse:
                layer_input = _reverse_within_lengths(layer_input, lengths)
            output, h_n = clockwork_rnn(layer_input, state, *parameters, self.periods,
                                        self.module_sizes, t0, self.nonlinearity, lengths)
            return (_reverse_within_lengths(output, lengths) if reverse else output), h_n

        output, h_n = self.run_layers(input, hx, run_direction)
        if packed:
            return self._repack(output, packed_input), h_n
        if unbatched:
            return output.squeeze(1), h_n.squeeze(1)
        if self.batch_first:
            output = output.transpose(0, 1)
        return output, h_n

    def run_layers(self, input, hx, run_direction):
        """`input` through every layer and direction as nn.RNN stacks them: run_direction(
        layer_input, state, (weight_ih, weight_hh, bias_ih, bias_hh), reverse) -> (output, h_n)
        runs one direction of one layer (a sequence for forward, one step for Stream.step); the
        directions' outputs are concatenated along the last dimension, and dropout (in training)
        falls between layers. hx: (num_layers * num_directions, ...) or None. Returns (the last
        layer's output, h_n stacked in nn.RNN's order)."""
        layer_input, finals = input, []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                layer_input = nn.functional.dropout(layer_input, self.dropout, training=True)
            outputs = []
            for direction, suffix in enumerate(self._direction_suffixes):
                state = None if hx is None else hx[layer * self.num_directions + direction]
                output, h_n = run_direction(layer_input, state, self._layer_parameters(layer, suffix),
                                            direction == 1)
                outputs.append(output)
                finals.append(h_n)
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
        return layer_input, torch.stack(finals)

    def _check_hx(self, hx, input, unbatched):
        if hx is None:
            return None
        if not isinstance(hx, torch.Tensor):
            raise TypeError(f"hx must be a Tensor, got {type(hx).__name__}")
        states = self.num_layers * self.num_directions
        expected = (states, self.hidden_size) if unbatched else (states, input.shape[1], self.hidden_size)
        if tuple(hx.shape) != expected:
            layers = "num_layers * 2" if self.bidirectional else "num_layers"
            raise ValueError(f"hx must have shape {expected} ({layers}, {'' if unbatched else 'batch, '}hidden_size), "
                             f"got {tuple(hx.shape)}")
        return hx.unsqueeze(1) if unbatched else hx

    @staticmethod
    def _repack(output, like: PackedSequence) -> PackedSequence:
        """Pack `output` (T, B, H, original order) exactly as `like` was packed."""
        order = like.sorted_indices
        lengths_sorted = pad_packed_sequence(like)[1]
        if order is not None:
            output = output.index_select(1, order.to(output.device))
            lengths_sorted = lengths_sorted[order.cpu()]
        data = pack_padded_sequence(output, lengths_sorted, enforce_sorted=True).data
        return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class ClockworkRNNCell(_ClockworkBase):
    """One Clockwork RNN step, as `nn.RNNCell` with a clock.

    forward(input, hx=None, t=0) -> h_next
      input: (B, I), or (I,) unbatched; hx: (B, H) or (H,), default zeros.
      t: the clock value of this step: an int (every row), or an integer tensor (B,) on the
         input's device giving each row its own clock, so that streams which started at
         different times can share a batch (unbatched input: an int or a 0-d tensor).
      Module i is active iff t % periods[i] == 0 (per row); only the active modules' rows are
      computed (each reading its allowed columns of weight_hh), the others keep hx's values.

    One step is one call of the compiled `step` op (layout checked once, at construction), and
    gradients flow through it, so a Python loop of cells trains as a sequence does. To run a
    sequence piece by piece without counting t yourself, see `cwrnn_ext.Stream`.
    """

    def __init__(self, input_size: int, hidden_size: int, periods: Optional[Sequence[int]] = None,
                 num_modules: Optional[int] = None, module_sizes: Optional[Sequence[int]] = None,
                 bias: bool = True, nonlinearity: str = "tanh", device=None, dtype=None):
        super().__init__()
        self._setup(input_size, hidden_size, periods, num_modules, module_sizes, nonlinearity, bias)
        self._add_layer_parameters("", self.input_size, {"device": device, "dtype": dtype})
        self.reset_parameters()

    def _step_parameters(self):
        """(weight_ih, weight_hh, bias_ih, bias_hh): read from the parameter dict, which is faster
        than attribute access through nn.Module.__getattr__ (a step costs a few microseconds);
        through attributes where something (a parametrization) has replaced them."""
        params = self._parameters
        try:
            weights = params["weight_ih"], params["weight_hh"]
            return weights + ((params["bias_ih"], params["bias_hh"]) if self.bias else (None, None))
        except KeyError:
            biases = (self.bias_ih, self.bias_hh) if self.bias else (None, None)
            return (self.weight_ih, self.weight_hh) + biases

    def forward(self, input, hx=None, t=0):
        """One step at clock value `t`: returns h_next, shaped like hx.

        input: (B, input_size), or unbatched (input_size,), in the weights' dtype.
        hx: (B, hidden_size) or (hidden_size,), default zeros.
        t: an int in [0, 2**63 - 1] for every row, or an integer tensor (B,) on the input's device
            giving each row its own clock (unbatched: an int or a 0-d tensor).
        Module i is active in a row iff its clock % periods[i] == 0; held modules keep hx's values.
        """
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
        unbatched = input.dim() == 1
        if not unbatched and input.dim() != 2:
            raise ValueError(f"input must be 1-D (I,) or 2-D (B, I), got shape {tuple(input.shape)}")
        batch = input.unsqueeze(0) if unbatched else input
        rows, hidden = batch.shape[0], self.hidden_size
        if batch.shape[1] != self.input_size:
            raise ValueError(f"input has {batch.shape[1]} features, expected input_size={self.input_size}")
        if hx is None:
            hx = batch.new_zeros(rows, hidden)
        else:
            if not isinstance(hx, torch.Tensor):
                raise TypeError(f"hx must be a Tensor, got {type(hx).__name__}")
            if hx.dim() != input.dim():
                raise ValueError(f"hx must be {input.dim()}-D like input, got shape {tuple(hx.shape)}")
            if unbatched:
                hx = hx.unsqueeze(0)
            if hx.shape[0] != rows or hx.shape[1] != hidden:
                raise ValueError(f"hx must have shape {(rows, hidden)[unbatched:]}, got {tuple(hx.shape)[unbatched:]}")
            if hx.dtype != input.dtype:
                raise TypeError(f"hx has dtype {hx.dtype} but input has dtype {input.dtype}")
        weight_ih, weight_hh, bias_ih, bias_hh = self._step_parameters()
        check_input_dtype(input, weight_ih, allow_autocast=False)  # the step op does not autocast
        if type(t) is int and 0 <= t <= INT64_MAX:  # the common case, checked
            clocks = None
        else:
            kernel_checks_clocks = input.is_cpu and step_kernel_supports(input.device, input.dtype)
            t, clocks = step_clock(t, rows, input.device, unbatched, kernel_checks_clocks)
        h_next = run_step(batch, hx, weight_ih, weight_hh, bias_ih, bias_hh, self.periods,
                          self.module_sizes, t, clocks, self.nonlinearity)
        return h_next.squeeze(0) if unbatched else h_next
