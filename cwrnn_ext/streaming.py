"""`Stream`: feed a Clockwork RNN its input as it arrives, one step or one chunk at a time, with
the hidden state and the clock carried for you.

    stream = cwrnn_ext.Stream(rnn)        # rnn: a ClockworkRNN or a ClockworkRNNCell
    y = stream.step(x_t)                  # x_t (B, I) -> (B, H): the top layer's new state
    ys = stream.chunk(x_chunk)            # (T, B, I) (batch_first as the rnn) -> like rnn(x)[0]
    torch.save(stream.state_dict(), f)    # {"h": ..., "t": ...}: tensors only

Any split of a sequence into steps and chunks gives the outputs and final state of one call on the
whole sequence, gradients included. Each row of the batch has its own clock, so `reset(rows)` can
start a new stream in some rows while the others go on.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .arguments import INT64_MAX, check_clock
from .integers import as_int, as_int_list
from .modules import ClockworkRNN, ClockworkRNNCell, check_input_dtype
from .functional import clockwork_rnn
from .step import check_clock_tensor, run_step


class Stream:
    """Carries the state `h` and the clock `t` of a ClockworkRNN or ClockworkRNNCell between calls.

    Stream(rnn, hx=None, t=0): `hx` as the module's forward takes it (default zeros at the first
    input); `t` the clock value of the first step: an int (every row) or an integer tensor (B,),
    one per row (streams that started at different times).

    step(x) runs one step, chunk(x) the next T steps; the stream advances the clock. Attributes:
      h: the state as the module's `hx`: (num_layers, B, H) for a ClockworkRNN, (B, H) for a
         cell; without the B dimension for unbatched input. None before the first input.
      t: int64 tensor (B,) (0-d for unbatched input): each row's clock at its next step.
    state_dict() / load_state_dict() give and take {"h": h, "t": t}, tensors only.

    While all rows share one clock, steps pass it as an int and chunks go to the module's sequence
    forward; rows with different clocks run step by step with a clock per row.

    Limits: a bidirectional ClockworkRNN cannot stream (its reverse direction reads the future;
    refused with a ValueError). The batch size, and batched or unbatched, are fixed by the first
    input until reset(). A chunk advances every row by its T steps (no lengths, no
    PackedSequence). A chunk whose rows' clocks differ runs as T single steps (slower than one
    call). The clock is an int64: a step or chunk that would carry t past 2**63 - 1 is refused
    with a ValueError (reset() starts it again at 0).
    """

    def __init__(self, rnn: nn.Module, hx: Optional[torch.Tensor] = None, t=0):
        if not isinstance(rnn, (ClockworkRNN, ClockworkRNNCell)):
            raise TypeError(f"rnn must be a ClockworkRNN or a ClockworkRNNCell, got {type(rnn).__name__}")
        if isinstance(rnn, ClockworkRNN) and rnn.bidirectional:
            raise ValueError("a bidirectional ClockworkRNN cannot stream: its reverse direction "
                             "needs the end of the sequence first")
        if hx is not None and not isinstance(hx, torch.Tensor):
            raise TypeError(f"hx must be a Tensor, got {type(hx).__name__}")
        self.rnn = rnn
        self.h: Optional[torch.Tensor] = hx
        self._start = t if isinstance(t, torch.Tensor) else check_clock(t, "t")
        # The clock, once the batch is known: one int for every row (_clock), or a tensor of
        # clocks (_clocks) when the rows' clocks differ. _shape, _device: those of `t`.
        self._clock: Optional[int] = None
        self._clocks: Optional[torch.Tensor] = None
        self._latest = 0  # the largest clock of any row, as a Python int (no device read per step)
        self._shape = None
        self._device = None

    # -- state ---------------------------------------------------------------------------------

    @property
    def t(self) -> Optional[torch.Tensor]:
        if self._clock is not None:
            return torch.full(self._shape, self._clock, dtype=torch.int64, device=self._device)
        return self._clocks

    def state_dict(self) -> dict:
        return {"h": self.h, "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"h", "t"}:
            raise ValueError(f"state must have the keys 'h' and 't', got {sorted(state)}")
        h, t = state["h"], state["t"]
        if (h is None) != (t is None):
            raise ValueError("state's h and t must both be tensors, or both None")
        if t is None:
            self.reset()
            return
        if not isinstance(h, torch.Tensor) or not isinstance(t, torch.Tensor):
            raise TypeError("state's h and t must be tensors")
        self._set_clock(self._check_state(h, t))
        self.h = h

    def reset(self, rows=None) -> None:
        """Start over: every row (rows=None; the batch size is free again), or only `rows`, whose
        state becomes zero and clock 0. `rows`: a row index, a sequence or integer tensor of row
        indices (negative ones count from the end), a slice, or a bool tensor (batch,)."""
        if rows is None:
            self.h, self._start = None, 0
            self._clock = self._clocks = self._shape = self._device = None
            return
        if self._shape is None:
            return  # nothing has run: every row starts at zero anyway
        if self._shape == ():
            raise ValueError("rows is meaningless for an unbatched stream; call reset() instead")
        t = self.t
        keep = ~self._rows_mask(rows, self._shape[0]).to(t.device)
        self._set_clock(torch.where(keep, t, torch.zeros_like(t)))
        self.h = self.h * keep.view(-1, 1).to(self.h.dtype)  # zero the rows, keep the graph

    @staticmethod
    def _rows_mask(rows, batch: int) -> torch.Tensor:
        """reset's `rows` as a CPU bool tensor (batch,), or an error naming `rows`."""
        mask = torch.zeros(batch, dtype=torch.bool)
        if isinstance(rows, slice):
            mask[rows] = True
            return mask
        if not isinstance(rows, torch.Tensor) and hasattr(rows, "dtype") and hasattr(rows, "shape"):
            rows = torch.as_tensor(rows)  # a NumPy array or scalar
        if isinstance(rows, torch.Tensor):
            if rows.dtype == torch.bool:
                if tuple(rows.shape) != (batch,):
                    raise ValueError(f"rows as a bool tensor must have shape (batch,) = ({batch},), "
                                     f"got {tuple(rows.shape)}")
                return rows.cpu()
            if rows.is_floating_point() or rows.is_complex():
                raise TypeError(f"rows must be row indices (ints) or a bool tensor (batch,), got a "
                                f"tensor of dtype {rows.dtype}")
            if rows.dim() > 1:
                raise ValueError(f"rows as an index tensor must be 0-d or 1-D, got shape {tuple(rows.shape)}")
            indices = rows.reshape(-1).tolist()
        elif isinstance(rows, (list, tuple)):
            indices = as_int_list(rows, "rows")
        else:
            indices = [as_int(rows, "rows")]
        for index in indices:
            if not -batch <= index < batch:
                raise ValueError(f"rows: row {index} is out of range for the stream's batch of {batch} "
                                 f"(valid: {-batch} to {batch - 1})")
        mask[indices] = True
        return mask

    def detach(self) -> "Stream":
        """Cut the autograd graph at the current state (truncated backpropagation through time)."""
        if self.h is not None:
            self.h = self.h.detach()
        return self

    # -- running -------------------------------------------------------------------------------

    def step(self, input: torch.Tensor) -> torch.Tensor:
        """One step at the stream's clock t: returns the top layer's new state.

        input: (B, input_size), or unbatched (input_size,), in the weights' dtype; the first input
            fixes the batch size until reset().
        Returns (B, hidden_size) or (hidden_size,): what rnn(x)[0] gives at this step. The stream's
        state h becomes the new state of every layer and each row's clock t advances by 1 (a step
        that would carry t past 2**63 - 1 is refused with a ValueError).
        """
        if not isinstance(input, torch.Tensor) or input.dim() not in (1, 2):
            raise ValueError(f"input must be a (B, I) or (I,) tensor, got "
                             f"{tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__}")
        rnn = self.rnn
        if input.shape[-1] != rnn.input_size:
            raise ValueError(f"input has {input.shape[-1]} features, expected input_size={rnn.input_size}")
        unbatched = input.dim() == 1
        self._check_dtype(input, allow_autocast=False)  # the step op does not autocast
        self._begin(input, unbatched, 0 if unbatched else input.shape[0])
        self._check_room(1)
        clock = self._clock if self._clock is not None else self._clocks
        if isinstance(rnn, ClockworkRNNCell):
            self.h = rnn(input, self.h, t=clock)
            self._advance(1)
            return self.h
        x = input.unsqueeze(0) if unbatched else input
        h = self.h.unsqueeze(1) if unbatched else self.h
        t, clocks = (clock, None) if self._clock is not None else (0, self._clocks)

        def step_direction(layer_input, state, parameters, reverse):
            h_next = run_step(layer_input, state, *parameters, rnn.periods, rnn.module_sizes, t, clocks,
                              rnn.nonlinearity)
            return h_next, h_next

        x, h_next = rnn.run_layers(x, h, step_direction)
        self.h = h_next.squeeze(1) if unbatched else h_next
        self._advance(1)
        return x.squeeze(0) if unbatched else x

    def chunk(self, input: torch.Tensor) -> torch.Tensor:
        """The next T steps: input (T, B, I) (or (B, T, I) for a batch_first ClockworkRNN; (T, I)
        unbatched) -> the outputs, shaped as the module's forward gives them. Every row's clock
        advances by T (refused, as in step, if that would carry it past 2**63 - 1)."""
        if not isinstance(input, torch.Tensor) or input.dim() not in (2, 3):
            raise ValueError(f"input must be a (T, B, I) or (T, I) tensor, got "
                             f"{tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__}")
        rnn = self.rnn
        batch_first = isinstance(rnn, ClockworkRNN) and rnn.batch_first and input.dim() == 3
        unbatched = input.dim() == 2
        time_major = input.transpose(0, 1) if batch_first else input
        steps = time_major.shape[0]
        self._check_dtype(input, allow_autocast=steps > 1)  # a chunk of one step is a step
        self._begin(input, unbatched, 0 if unbatched else time_major.shape[1])
        if steps == 0:
            shape = list(input.shape)
            shape[-1] = rnn.hidden_size
            return input.new_zeros(shape)
        self._check_room(steps)
        if self._clock is None or steps == 1:  # clocks differ per row, or a single step
            output = torch.stack([self.step(time_major[s]) for s in range(steps)])
            return output.transpose(0, 1) if batch_first else output
        if isinstance(rnn, ClockworkRNN):
            output, self.h = rnn(input, self.h, t0=self._clock)
        else:
            x = time_major.unsqueeze(1) if unbatched else time_major
            h = self.h.unsqueeze(0) if unbatched else self.h
            bias_ih, bias_hh = (rnn.bias_ih, rnn.bias_hh) if rnn.bias else (None, None)
            output, h_n = clockwork_rnn(x, h, rnn.weight_ih, rnn.weight_hh, bias_ih, bias_hh,
                                        rnn.periods, rnn.module_sizes, self._clock, rnn.nonlinearity)
            output, self.h = (output.squeeze(1), h_n.squeeze(0)) if unbatched else (output, h_n)
        self._advance(steps)
        return output

    # -- helpers -------------------------------------------------------------------------------

    def _check_dtype(self, input: torch.Tensor, allow_autocast: bool) -> None:
        """The input must have the weights' dtype (another one inside torch.autocast only where
        the sequence forward runs, which autocasts)."""
        weight = self.rnn.weight_ih_l0 if isinstance(self.rnn, ClockworkRNN) else self.rnn.weight_ih
        check_input_dtype(input, weight, allow_autocast=allow_autocast)

    def _check_room(self, steps: int) -> None:
        """Refuses `steps` more steps if they would carry a clock past 2**63 - 1 (t is int64)."""
        if self._latest > INT64_MAX - steps:
            rows = "" if self._clock is not None else " in some row"
            raise ValueError(f"t: the stream's clock is {self._latest}{rows}; {steps} more step(s) "
                             f"would carry it past 2**63 - 1, the largest clock (reset() starts it "
                             f"again at 0)")

    def _advance(self, steps: int) -> None:
        self._latest += steps
        if self._clock is not None:
            self._clock += steps
        else:
            self._clocks = self._clocks + steps

    def _set_clock(self, t: torch.Tensor) -> None:
        """Takes the clocks `t` (checked), as one int if every row has the same."""
        self._shape, self._device = tuple(t.shape), t.device
        flat = t.reshape(-1)
        same = flat.numel() == 0 or bool((flat == flat[0]).all())
        self._clock = (int(flat[0]) if flat.numel() else 0) if same else None
        self._clocks = None if same else t
        self._latest = self._clock if same else int(flat.max())

    def _state_shape(self, batch: int, unbatched: bool):
        rows = () if unbatched else (batch,)
        layers = (self.rnn.num_layers,) if isinstance(self.rnn, ClockworkRNN) else ()
        return layers + rows + (self.rnn.hidden_size,)

    def _check_state(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Checks h against the clocks t (0-d or (B,)); returns t as int64."""
        if t.dim() > 1:
            raise ValueError(f"t must be 0-d or (batch,), got shape {tuple(t.shape)}")
        unbatched = t.dim() == 0
        batch = 1 if unbatched else t.shape[0]
        expected = self._state_shape(batch, unbatched)
        if tuple(h.shape) != expected:
            raise ValueError(f"h must have shape {expected} for t of shape {tuple(t.shape)}, got {tuple(h.shape)}")
        return check_clock_tensor(t.reshape(-1), "t", batch, h.device).reshape(t.shape)

    def _begin(self, input: torch.Tensor, unbatched: bool, batch: int) -> None:
        """Creates the state at the first input; afterwards checks that the input fits it."""
        if self._shape is None:
            shape = () if unbatched else (batch,)
            if self.h is None:
                self.h = input.new_zeros(self._state_shape(batch, unbatched))
            start = self._start
            if isinstance(start, torch.Tensor):
                if tuple(start.shape) != shape and not (start.dim() == 0 and not unbatched):
                    raise ValueError(f"t must have shape {shape} for this input, got {tuple(start.shape)}")
                t = start.expand(shape)
            else:
                t = torch.full(shape, start, dtype=torch.int64, device=input.device)
            self._set_clock(self._check_state(self.h, t))
        elif (self._shape == ()) != unbatched or (not unbatched and self._shape[0] != batch):
            state = "unbatched" if self._shape == () else f"a batch of {self._shape[0]}"
            given = "unbatched" if unbatched else f"a batch of {batch}"
            raise ValueError(f"input is {given} but the stream carries {state}; call reset() to "
                             f"start a stream of another size")

    def __repr__(self) -> str:
        state = "empty" if self._shape is None else f"h {tuple(self.h.shape)}, t {self._shape}"
        return f"Stream({self.rnn.__class__.__name__}, {state})"
