"""Before timing anything: the three CW-RNN variants must compute the same function.

Checked in float64 on a small problem whose slowest module ticks only a few times, with
nontrivial holds, so a wrong mask, a wrong hold or a wrong clock would show.
"""
from __future__ import annotations

from typing import Dict

import torch

from .configs import Config
from .models import CLOCKWORK_MODELS, build_models, trainable

CHECK_CONFIG = Config(batch=3, steps=37, input_size=5, hidden_size=19, num_modules=5, dtype="float64")
TOLERANCE = 1e-9


def max_differences(config: Config = CHECK_CONFIG,
                    device: torch.device = torch.device("cpu")) -> Dict[str, float]:
    """Largest |difference| from the reference of each other variant's output, h_n and gradients."""
    models = build_models(config, CLOCKWORK_MODELS, device, torch.float64)
    torch.manual_seed(1)
    input = torch.randn(config.steps, config.batch, config.input_size, device=device, dtype=torch.float64)
    results = {name: _outputs_and_grads(model, input) for name, model in models.items()}
    reference = results["cwrnn_reference"]
    return {name: max((a - b).abs().max().item() for a, b in zip(values, reference))
            for name, values in results.items() if name != "cwrnn_reference"}


def _outputs_and_grads(model, input):
    input = input.detach().requires_grad_(True)
    output, h_n = model(input)
    grads = torch.autograd.grad(output.sum() + h_n.sum(), [input] + trainable(model))
    return [output, h_n.reshape(h_n.shape[-2:])] + list(grads)


def check_clockwork_variants(device: torch.device = torch.device("cpu")) -> str:
    """Raises if the kernel or the naive model disagree with the reference; else a one-line summary."""
    differences = max_differences(device=device)
    bad = {name: d for name, d in differences.items() if not d <= TOLERANCE}
    if bad:
        raise RuntimeError(f"CW-RNN variants disagree with cwrnn_ext.reference "
                           f"(float64, {CHECK_CONFIG.label}): {bad}")
    worst = ", ".join(f"{name} {d:.1e}" for name, d in differences.items())
    return (f"check: kernel and dense-masked CW-RNN match cwrnn_ext.reference in float64 "
            f"(outputs, h_n, all gradients; max |diff|: {worst})")
