"""The models under test, all built for one Config with the same calling convention:
time-major input (T, B, I) -> (output (T, B, H), h_n).

The three CW-RNN variants (kernel, pure-PyTorch reference, naive dense-masked) share identical
weights; before timing anything the benchmark checks, in float64 on a small problem whose slowest
module ticks only a few times, that they compute the same function (outputs, h_n, every gradient),
as unidirectional and as bidirectional layers, so a wrong mask, hold or clock would show. A
bidirectional Config makes every model a bidirectional layer: output (T, B, 2H), h_n (2, B, H).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Iterable, List, Sequence

import torch
from torch import nn

import cwrnn_ext
from cwrnn_ext.layout import allowed_mask, unit_periods

from .configs import MODEL_NAMES, Config
from .work import cwrnn_parameter_count, lstm_hidden_for_params

CLOCKWORK_MODELS = ("cwrnn", "cwrnn_reference", "cwrnn_naive")


class OneLayerClockwork(nn.Module):
    """A one-layer CW-RNN written out in Python, optionally bidirectional: `naive`, the way most
    public code writes it (a Python loop, the full H x H product at every step, then the inactive
    modules' units put back to their held values), else `cwrnn_ext.reference.clockwork_rnn`, the
    library's pure-PyTorch definition. Parameters are named as in nn.RNN (`weight_ih_l0`, ...,
    `..._reverse`), so `load_state_dict(ClockworkRNN(...).state_dict())` works."""

    def __init__(self, input_size: int, hidden_size: int, periods: Sequence[int], module_sizes: Sequence[int],
                 bidirectional: bool, naive: bool, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.periods, self.module_sizes, self.naive = list(periods), list(module_sizes), naive
        self.suffixes = ("", "_reverse") if bidirectional else ("",)
        for suffix in self.suffixes:
            for name, shape in (("weight_ih", (hidden_size, input_size)), ("weight_hh", (hidden_size, hidden_size)),
                                ("bias_ih", (hidden_size,)), ("bias_hh", (hidden_size,))):
                self.register_parameter(f"{name}_l0{suffix}", nn.Parameter(torch.zeros(*shape, **factory)))
        if naive:
            self.register_buffer("mask", allowed_mask(periods, module_sizes, device).to(dtype), persistent=False)
            self.register_buffer("unit_period", unit_periods(periods, module_sizes, device), persistent=False)

    def direction(self, input, weight_ih, weight_hh, bias_ih, bias_hh):
        """(output (T, B, H), h_n (B, H)) of one direction over `input` in its own time order."""
        if not self.naive:
            return cwrnn_ext.reference.clockwork_rnn(input, None, weight_ih, weight_hh, bias_ih, bias_hh,
                                                     self.periods, self.module_sizes)
        weight_hh = weight_hh * self.mask  # masking keeps the slow->fast structure
        active = torch.arange(input.shape[0], device=input.device)[:, None] % self.unit_period == 0  # (T, H)
        h, outputs = input.new_zeros(input.shape[1], weight_hh.shape[0]), []
        for t in range(input.shape[0]):
            candidate = torch.tanh(nn.functional.linear(input[t], weight_ih, bias_ih + bias_hh)
                                   + nn.functional.linear(h, weight_hh))
            h = torch.where(active[t], candidate, h)
            outputs.append(h)
        return torch.stack(outputs), h

    def forward(self, input: torch.Tensor):
        """(output (T, B, H * directions), h_n (directions, B, H)), as nn.RNN."""
        outputs, finals = [], []
        for suffix in self.suffixes:
            weights = [getattr(self, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            # Every sequence here is full length, so running it backwards is flipping time.
            reverse = suffix == "_reverse"
            output, h = self.direction(input.flip(0) if reverse else input, *weights)
            outputs.append(output.flip(0) if reverse else output)
            finals.append(h.reshape(h.shape[-2:]))
        if len(outputs) == 1:  # no copy of the output for a single direction
            return outputs[0], finals[0].unsqueeze(0)
        return torch.cat(outputs, dim=2), torch.stack(finals)


@dataclass
class BenchModel:
    name: str
    module: nn.Module
    hidden_size: int
    parameters: int  # trainable entries that matter (CW-RNN: the allowed blocks only)

    def __call__(self, input: torch.Tensor):
        """(output, h_n) for every model; nn.LSTM's (h_n, c_n) is reduced to h_n."""
        output, state = self.module(input)
        return output, state[0] if isinstance(state, tuple) else state


def build_models(config: Config, names: Iterable[str], device: torch.device, dtype: torch.dtype,
                 seed: int = 0) -> Dict[str, BenchModel]:
    """The requested models for `config`, on `device` in `dtype`, CW-RNN variants sharing weights;
    bidirectional layers (H per direction) when `config.bidirectional`."""
    torch.manual_seed(seed)
    factory = {"device": device, "dtype": dtype}
    I, H, bidirectional = config.input_size, config.hidden_size, config.bidirectional
    layout = (config.periods, config.module_sizes)
    cw_params = cwrnn_parameter_count(*layout, I)  # per direction
    names = list(names)
    # Only when a CW-RNN variant is asked for: a model measured alone in a fresh process must not
    # find the heap shaped by another model's buffers (freeing them moves glibc's mmap threshold).
    kernel = (cwrnn_ext.ClockworkRNN(I, H, periods=config.periods, module_sizes=config.module_sizes,
                                     bidirectional=bidirectional, **factory)
              if any(name in CLOCKWORK_MODELS for name in names) else None)
    models: Dict[str, BenchModel] = {}
    for name in names:
        if name == "cwrnn":
            models[name] = BenchModel(name, kernel, H, cw_params * config.directions)
        elif name in ("cwrnn_reference", "cwrnn_naive"):
            module = OneLayerClockwork(I, H, *layout, bidirectional, name == "cwrnn_naive", **factory)
            module.load_state_dict(kernel.state_dict())
            models[name] = BenchModel(name, module, H, cw_params * config.directions)
        elif name in ("rnn", "lstm", "lstm_same_params"):
            # Same parameters per direction is the same parameters in all.
            hidden = lstm_hidden_for_params(cw_params, I) if name == "lstm_same_params" else H
            cls = nn.RNN if name == "rnn" else nn.LSTM
            module = cls(I, hidden, bidirectional=bidirectional, **factory)
            models[name] = BenchModel(name, module, hidden, sum(p.numel() for p in module.parameters()))
        else:
            raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")
    return models


def trainable(model: BenchModel) -> List[torch.nn.Parameter]:
    return [p for p in model.module.parameters() if p.requires_grad]


CHECK_CONFIG = Config(batch=3, steps=37, input_size=5, hidden_size=19, num_modules=5, dtype="float64")
CHECK_CONFIGS = (CHECK_CONFIG, replace(CHECK_CONFIG, bidirectional=True))


def max_differences(config: Config = CHECK_CONFIG) -> Dict[str, float]:
    """Largest |difference| from the reference of each other variant's output, h_n and gradients."""
    models = build_models(config, CLOCKWORK_MODELS, torch.device("cpu"), torch.float64)
    torch.manual_seed(1)
    input = torch.randn(config.steps, config.batch, config.input_size, dtype=torch.float64)
    results = {}
    for name, model in models.items():
        leaf = input.detach().requires_grad_(True)
        output, h_n = model(leaf)
        results[name] = [output, h_n, *torch.autograd.grad(output.sum() + h_n.sum(), [leaf] + trainable(model))]
    reference = results.pop("cwrnn_reference")
    # A shape mismatch (e.g. parameters in another order) is a disagreement, not a crash.
    return {name: max((a - b).abs().max().item() if a.shape == b.shape else float("inf")
                      for a, b in zip(values, reference)) for name, values in results.items()}


def check_clockwork_variants() -> str:
    """Raises if the kernel or the dense-masked model disagree with the reference; else a summary line."""
    worst: Dict[str, float] = {}
    for config in CHECK_CONFIGS:
        differences = max_differences(config)
        bad = {name: d for name, d in differences.items() if not d <= 1e-9}
        if bad:
            raise RuntimeError(f"CW-RNN variants disagree with cwrnn_ext.reference (float64, {config.label}): {bad}")
        worst = {name: max(worst.get(name, 0.0), d) for name, d in differences.items()}
    summary = ", ".join(f"{name} {d:.1e}" for name, d in worst.items())
    return (f"check: kernel and dense-masked CW-RNN match cwrnn_ext.reference in float64, "
            f"unidirectional and bidirectional (outputs, h_n, all gradients; max |diff|: {summary})")
