"""Before timing anything: the three CW-RNN variants must compute the same function.

Checked in float64 on a small problem whose slowest module ticks only a few times, with
nontrivial holds, so a wrong mask, a wrong hold or a wrong clock would show; once as a
unidirectional and once as a bidirectional layer (the kernel's reverse direction against the
reference run on the flipped sequence), since the benchmark times both.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict

import torch

from .configs import Config
from .models import CLOCKWORK_MODELS, build_models, trainable

CHECK_CONFIG = Config(batch=3, steps=37, input_size=5, hidden_size=19, num_modules=5, dtype="float64")
CHECK_CONFIGS = (CHECK_CONFIG, replace(CHECK_CONFIG, bidirectional=True))
TOLERANCE = 1e-9


def max_differences(config: Config = CHECK_CONFIG,
                    device: torch.device = torch.device("cpu")) -> Dict[str, float]:
    """Largest |difference| from the reference of each other variant's output, h_n and gradients."""
    models = build_models(config, CLOCKWORK_MODELS, device, torch.float64)
    torch.manual_seed(1)
    input = torch.randn(config.steps, config.batch, config.input_size, device=device, dtype=torch.float64)
    results = {name: _outputs_and_grads(model, input) for name, model in models.items()}
    reference = results["cwrnn_reference"]
    return {name: max(_difference(a, b) for a, b in zip(values, reference))
            for name, values in results.items() if name != "cwrnn_reference"}


def _difference(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:  # e.g. parameters in another order: a disagreement, not a crash
        return float("inf")
    return (a - b).abs().max().item()


def _outputs_and_grads(model, input):
    input = input.detach().requires_grad_(True)
    output, h_n = model(input)
    grads = torch.autograd.grad(output.sum() + h_n.sum(), [input] + trainable(model))
    return [output, h_n] + list(grads)


def check_clockwork_variants(device: torch.device = torch.device("cpu")) -> str:
    """Raises if the kernel or the naive model disagree with the reference, unidirectional or
    bidirectional; else a one-line summary."""
    worst: Dict[str, float] = {}
    for config in CHECK_CONFIGS:
        differences = max_differences(config, device)
        bad = {name: d for name, d in differences.items() if not d <= TOLERANCE}
        if bad:
            raise RuntimeError(f"CW-RNN variants disagree with cwrnn_ext.reference "
                               f"(float64, {config.label}): {bad}")
        for name, d in differences.items():
            worst[name] = max(worst.get(name, 0.0), d)
    summary = ", ".join(f"{name} {d:.1e}" for name, d in worst.items())
    return (f"check: kernel and dense-masked CW-RNN match cwrnn_ext.reference in float64, "
            f"unidirectional and bidirectional (outputs, h_n, all gradients; max |diff|: {summary})")
