"""`Stream`: feed a Clockwork RNN its input as it arrives, one step or one chunk at a time, with
the hidden state and the clock carried for you.

    stream = cwrnn_ext.Stream(rnn)        # rnn: a ClockworkRNN or a ClockworkRNNCell
    y = stream.step(x_t)                  # x_t (B, I) -> (B, H): the top layer's new state
    ys = stream.chunk(x_chunk)            # (T, B, I) (batch_first as the rnn) -> like rnn(x)[0]
    torch.save(stream.state_dict(), f)    # {"h": ..., "t": ...}: tensors only

Any split of a sequence into steps and chunks gives the outputs and final state of one call on the
whole sequence, gradients included. Each row of the batch has its own clock (`t`, int64 (B,)),
so `reset(rows)` can start a new stream in some rows while the others go on.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .modules import ClockworkRNN, ClockworkRNNCell
from .step import check_clock_tensor, run_step, sequence_forward
from .arguments import check_clock


class Stream:
    """Carries `h` and the clock `t` of a ClockworkRNN or ClockworkRNNCell between calls.

    State (both None until the first input, or given here):
      h: the state as the module's `hx`: (num_layers, B, H) for a ClockworkRNN, (B, H) for a
         cell (without the B dimension for unbatched input).
      t: int64 tensor (B,) (0-d for unbatched input): the clock value of each row's next step.
    `t` given here may be an int (every row) or a tensor (B,).

    A bidirectional ClockworkRNN cannot stream (its reverse direction reads the future).
    """

    def __init__(self, rnn: nn.Module, hx: Optional[torch.Tensor] = None, t=0):
        if not isinstance(rnn, (ClockworkRNN, ClockworkRNNCell)):
            raise TypeError(f"rnn must be a ClockworkRNN or a ClockworkRNNCell, got {type(rnn).__name__}")
        if isinstance(rnn, ClockworkRNN) and rnn.bidirectional:
            raise ValueError("a bidirectional ClockworkRNN cannot stream: its reverse direction "
                             "needs the end of the sequence first")
        self.rnn = rnn
        self.h: Optional[torch.Tensor] = None
        self.t: Optional[torch.Tensor] = None
        self._start = t if isinstance(t, torch.Tensor) else check_clock(t, "t")
        if hx is not None:
            if not isinstance(hx, torch.Tensor):
                raise TypeError(f"hx must be a Tensor, got {type(hx).__name__}")
            self.h = hx

    # -- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"h": self.h, "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"h", "t"}:
            raise ValueError(f"state must have the keys 'h' and 't', got {sorted(state)}")
        h, t = state["h"], state["t"]
        if (h is None) != (t is None):
            raise ValueError("state's h and t must both be tensors, or both None")
        if t is not None:
            if not isinstance(h, torch.Tensor) or not isinstance(t, torch.Tensor):
                raise TypeError("state's h and t must be tensors")
            self._check_state(h, t)
        self.h, self.t = h, t

    def reset(self, rows=None) -> None:
        """Start over: every row (rows=None; the batch size is free again), or only `rows` (an
        index or bool tensor over the batch), whose state becomes zero and clock 0."""
        if rows is None:
            self.h, self.t, self._start = None, None, 0
            return
        if self.t is None:
            return  # nothing has run: every row starts at zero anyway
        if self.t.dim() == 0:
            raise ValueError("rows is meaningless for an unbatched stream; call reset() instead")
        keep = torch.ones_like(self.t, dtype=torch.bool)
        keep[rows] = False
        self.t = torch.where(keep, self.t, torch.zeros_like(self.t))
        self.h = self.h * keep.view(-1, 1).to(self.h.dtype)  # zero the rows, keep the graph

    def detach(self) -> "Stream":
        """Cut the autograd graph at the current state (truncated backpropagation through time)."""
        if self.h is not None:
            self.h = self.h.detach()
        return self

    # -- running -------------------------------------------------------------------------------

    def step(self, input: torch.Tensor) -> torch.Tensor:
        """One step: input (B, I) or (I,) -> the top layer's new state (B, H) or (H,)."""
        if not isinstance(input, torch.Tensor) or input.dim() not in (1, 2):
            raise ValueError(f"input must be a (B, I) or (I,) tensor, got "
                             f"{tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__}")
        unbatched = input.dim() == 1
        rnn = self.rnn
        if input.shape[-1] != rnn.input_size:
            raise ValueError(f"input has {input.shape[-1]} features, expected input_size={rnn.input_size}")
        self._begin(input, unbatched, 0 if unbatched else input.shape[0])
        if isinstance(rnn, ClockworkRNNCell):
            self.h = rnn(input, self.h, t=self.t)
            self.t = self.t + 1
            return self.h
        x = input.unsqueeze(0) if unbatched else input
        h = self.h.unsqueeze(1) if unbatched else self.h
        clocks = self.t.view(1) if unbatched else self.t
        states = []
        for layer in range(rnn.num_layers):
            if layer > 0 and rnn.dropout > 0 and rnn.training:
                x = nn.functional.dropout(x, rnn.dropout, training=True)
            weight_ih, weight_hh, bias_ih, bias_hh = rnn._layer_parameters(layer)
            x = run_step(x, h[layer], weight_ih, weight_hh, bias_ih, bias_hh, rnn.periods,
                         rnn.module_sizes, 0, clocks, rnn.nonlinearity)
            states.append(x)
        h_next = torch.stack(states)
        self.h = h_next.squeeze(1) if unbatched else h_next
        self.t = self.t + 1
        return x.squeeze(0) if unbatched else x

    def chunk(self, input: torch.Tensor) -> torch.Tensor:
        """The next T steps: input (T, B, I) (or (B, T, I) for a batch_first ClockworkRNN; (T, I)
        unbatched) -> the outputs, shaped as the module's forward gives them."""
        if not isinstance(input, torch.Tensor) or input.dim() not in (2, 3):
            raise ValueError(f"input must be a (T, B, I) or (T, I) tensor, got "
                             f"{tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__}")
        rnn = self.rnn
        batch_first = isinstance(rnn, ClockworkRNN) and rnn.batch_first
        unbatched = input.dim() == 2
        time_major = input if unbatched or not batch_first else input.transpose(0, 1)
        steps = time_major.shape[0]
        self._begin(input, unbatched, 0 if unbatched else time_major.shape[1])
        if steps == 0:
            return self._empty_output(input)
        if self._clocks_differ():  # streams that started at different times: step by step
            outputs = [self.step(time_major[s]) for s in range(steps)]
            output = torch.stack(outputs)
            return output.transpose(0, 1) if batch_first and not unbatched else output
        t0 = int(self.t.reshape(-1)[0])
        if isinstance(rnn, ClockworkRNN):
            output, self.h = rnn(input, self.h, t0=t0)
        else:
            x = time_major.unsqueeze(1) if unbatched else time_major
            h = self.h.unsqueeze(0) if unbatched else self.h
            bias_ih, bias_hh = (rnn.bias_ih, rnn.bias_hh) if rnn.bias else (None, None)
            output, h_n = sequence_forward(x, h, rnn.weight_ih, rnn.weight_hh, bias_ih, bias_hh,
                                           rnn.periods, rnn.module_sizes, t0, rnn.nonlinearity, None)
            output, self.h = (output.squeeze(1), h_n.squeeze(0)) if unbatched else (output, h_n)
        self.t = self.t + steps
        return output

    # -- helpers -------------------------------------------------------------------------------

    def _state_shape(self, batch: int, unbatched: bool):
        rows = () if unbatched else (batch,)
        layers = (self.rnn.num_layers,) if isinstance(self.rnn, ClockworkRNN) else ()
        return layers + rows + (self.rnn.hidden_size,)

    def _check_state(self, h: torch.Tensor, t: torch.Tensor) -> None:
        unbatched = t.dim() == 0
        batch = 0 if unbatched else t.shape[0]
        if t.dim() > 1:
            raise ValueError(f"t must be 0-d or (batch,), got shape {tuple(t.shape)}")
        expected = self._state_shape(batch, unbatched)
        if tuple(h.shape) != expected:
            raise ValueError(f"h must have shape {expected} for t of shape {tuple(t.shape)}, got {tuple(h.shape)}")
        check_clock_tensor(t.reshape(-1), "t", max(batch, 1), h.device)

    def _begin(self, input: torch.Tensor, unbatched: bool, batch: int) -> None:
        """Creates the state at the first input; afterwards checks that the input fits it."""
        if self.t is None:
            if self.h is None:
                self.h = input.new_zeros(self._state_shape(batch, unbatched))
            start = self._start
            if isinstance(start, torch.Tensor):
                if unbatched:
                    t = check_clock_tensor(start.reshape(1), "t", 1, input.device).reshape(())
                else:
                    t = check_clock_tensor(start, "t", batch, input.device)
            else:
                t = torch.full((() if unbatched else (batch,)), start, dtype=torch.int64, device=input.device)
            self._check_state(self.h, t)
            self.t = t
        elif (self.t.dim() == 0) != unbatched or (not unbatched and self.t.shape[0] != batch):
            state = "unbatched" if self.t.dim() == 0 else f"a batch of {self.t.shape[0]}"
            given = "unbatched" if unbatched else f"a batch of {batch}"
            raise ValueError(f"input is {given} but the stream carries {state}; call reset() to "
                             f"start a stream of another size")

    def _clocks_differ(self) -> bool:
        t = self.t.reshape(-1)
        return t.numel() > 1 and bool((t != t[0]).any())

    def _empty_output(self, input: torch.Tensor) -> torch.Tensor:
        shape = list(input.shape)
        shape[-1] = self.rnn.hidden_size
        return input.new_zeros(shape)

    def __repr__(self) -> str:
        state = "empty" if self.t is None else f"h {tuple(self.h.shape)}, t {tuple(self.t.shape)}"
        return f"Stream({self.rnn.__class__.__name__}, {state})"
