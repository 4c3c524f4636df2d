"""Shared helpers for the cwrnn_ext tests: random problems, running both implementations,
comparing with per-dtype tolerances, and the device list.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import List, Optional

import pytest
import torch

import cwrnn_ext
from cwrnn_ext import reference

# --------------------------------------------------------------------------------------------
# Devices: CPU always; CUDA only where a GPU is visible and the CUDA kernels were compiled in.
# CUDA-only tests carry `needs_cuda` and skip cleanly elsewhere.
# --------------------------------------------------------------------------------------------
HAS_CUDA = torch.cuda.is_available() and cwrnn_ext.cuda_kernels_available()
DEVICES = ["cpu"] + (["cuda"] if HAS_CUDA else [])
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a GPU and cwrnn_ext built with CUDA kernels")

# Element-wise tolerances (rtol, atol): every element must satisfy
#     |actual - expected| <= atol + rtol * |expected|.
# Kernel and reference differ only in the order of their floating-point sums; atol covers
# entries that are sums of many terms larger than the result (cancellation in gradients).
# The CPU forward paths a forced family may run (module-major pipelines where its rule says so).
FAMILY = {"time_major": ("time_major",), "module_major": ("module_major", "pipelined")}

def tolerance(dtype, longest_sum: int = 8):
    """The one element-wise (rtol, atol) rule for float32 and float64 results against the float64
    reference, where only the order of accumulation differs: float32's atol grows like the rounding
    error of a sum of n terms, sqrt(n), with n the longest sum behind the result (H for outputs,
    T*B for weight gradients); entries near zero carry it, the rest the rtol."""
    if dtype == torch.float64:
        return (1e-10, 1e-12)
    if dtype == torch.float32:
        return (1e-4, 4e-6 * math.sqrt(max(longest_sum, 8)))
    raise ValueError(f"no element-wise tolerance for {dtype}: half types use assert_half_close")


# For the small problems most tests use (sums of at most a few dozen terms).
TOLERANCE = {dtype: tolerance(dtype) for dtype in (torch.float64, torch.float32)}
HALF_TYPES = (torch.float16, torch.bfloat16)

NAMES = ("input", "hx", "weight_ih", "weight_hh", "bias_ih", "bias_hh")


def unit_periods(periods, module_sizes) -> torch.Tensor:
    return torch.repeat_interleave(torch.tensor(list(periods)), torch.tensor(list(module_sizes)))


def allowed_mask(periods, module_sizes) -> torch.Tensor:
    """(H, H) bool, computed independently of the library: [r, c] iff period(c) >= period(r)."""
    per_unit = unit_periods(periods, module_sizes)
    return per_unit[None, :] >= per_unit[:, None]


def even_sizes(hidden, g) -> List[int]:
    base, extra = divmod(hidden, g)
    return [base + (1 if i < extra else 0) for i in range(g)]


@dataclass
class Problem:
    input: torch.Tensor
    hx: Optional[torch.Tensor]
    weight_ih: torch.Tensor
    weight_hh: torch.Tensor
    bias_ih: Optional[torch.Tensor]
    bias_hh: Optional[torch.Tensor]
    periods: List[int]
    module_sizes: List[int]
    explicit_sizes: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def hidden(self) -> int:
        return self.weight_hh.shape[0]

    def tensors(self):
        """The differentiable arguments that are present, as (name, tensor) pairs."""
        return [(n, getattr(self, n)) for n in NAMES if getattr(self, n) is not None]

    def args(self, t0=0, nonlinearity="tanh", lengths=None):
        return (self.input, self.hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                list(self.periods), list(self.module_sizes) if self.explicit_sizes else None,
                t0, nonlinearity, lengths)


def make_problem(T, B, I, H, periods, module_sizes=None, *, dtype=torch.float64, device="cpu",
                 seed=0, hx=True, bias_ih=True, bias_hh=True, noncontiguous=False,
                 requires_grad=True, weight_scale=0.5) -> Problem:
    """Random problem: inputs and hx ~ N(0, 1), weight_ih ~ U(+-1/sqrt(max(I, 1))),
    weight_hh ~ N(0, (weight_scale / sqrt(H))^2) (so tanh does not saturate), biases ~ N(0, 0.3^2).
    Disallowed blocks of weight_hh hold random values too: implementations must never read them.

    noncontiguous: input is a transposed (B, T, I) tensor, weights are .t() of contiguous
    tensors, hx is a strided slice."""
    explicit = module_sizes is not None
    sizes = list(module_sizes) if explicit else even_sizes(H, len(periods))
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype)

    if noncontiguous:
        x = rand(B, T, I).transpose(0, 1)
        w_ih = (rand(I, H) / math.sqrt(max(I, 1))).t()
        w_hh = rand(H, H, scale=weight_scale / math.sqrt(H)).t()
        h0 = rand(B, 2 * H)[:, ::2] if hx else None
    else:
        x = rand(T, B, I)
        w_ih = rand(H, I) / math.sqrt(max(I, 1))
        w_hh = rand(H, H, scale=weight_scale / math.sqrt(H))
        h0 = rand(B, H) if hx else None
    b_ih = rand(H, scale=0.3) if bias_ih else None
    b_hh = rand(H, scale=0.3) if bias_hh else None

    def prep(t):
        if t is None:
            return None
        return t.to(device).requires_grad_(requires_grad)

    return Problem(prep(x), prep(h0), prep(w_ih), prep(w_hh), prep(b_ih), prep(b_hh),
                   list(periods), sizes, explicit)


def random_lengths(T, B, seed=0, device="cpu"):
    """B lengths in [0, T] that contain a 0 and a full T when B allows it."""
    gen = torch.Generator().manual_seed(seed + 1000)
    lengths = torch.randint(0, T + 1, (B,), generator=gen)
    if B >= 1:
        lengths[0] = T
    if B >= 2:
        lengths[1] = 0
    return lengths.to(device)


def upstream_grads(output, h_n, seed=0):
    gen = torch.Generator().manual_seed(seed + 2000)
    go = torch.randn(output.shape, generator=gen, dtype=torch.float64).to(output.dtype).to(output.device)
    gh = torch.randn(h_n.shape, generator=gen, dtype=torch.float64).to(h_n.dtype).to(h_n.device)
    return go, gh


def run(fn, problem: Problem, t0=0, nonlinearity="tanh", lengths=None, grads=True, seed=0):
    """Run fn (kernel or reference); returns (output, h_n, {name: grad}) with random upstream
    gradients on both outputs. Unused inputs get a zero gradient (materialize_grads)."""
    output, h_n = fn(*problem.args(t0, nonlinearity, lengths))
    if not grads:
        return output, h_n, {}
    named = problem.tensors()
    go, gh = upstream_grads(output, h_n, seed)
    # (The reference's output for T == 0 is a fresh zeros tensor outside the graph.)
    pairs = [(o, g) for o, g in ((output, go), (h_n, gh)) if o.requires_grad]
    got = torch.autograd.grad([o for o, _ in pairs], [t for _, t in named], [g for _, g in pairs],
                              allow_unused=True, materialize_grads=True)
    return output, h_n, {n: g for (n, _), g in zip(named, got)}


def run_kernel(problem, **kw):
    return run(cwrnn_ext.clockwork_rnn, problem, **kw)


def run_reference(problem, **kw):
    return run(reference.clockwork_rnn, problem, **kw)


def assert_close(actual, expected, dtype=None, what="", tol=None):
    """Element-wise |actual - expected| <= atol + rtol * |expected|, with (rtol, atol) from
    TOLERANCE for `dtype` (default: expected's dtype) or `tol`; shapes and dtypes equal. NaN
    anywhere fails."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    rtol, atol = TOLERANCE[dtype or expected.dtype] if tol is None else tol
    torch.testing.assert_close(actual.detach(), expected.detach(), rtol=rtol, atol=atol,
                               msg=lambda m: f"{what}: {m}")


def assert_half_close(actual, expected, same_math, what=""):
    """The one criterion for half types (float16, bfloat16), where a fixed tolerance says little:
    every element's error against the float64 `expected` is at most twice the largest error of
    `same_math` (the same computation done by PyTorch in that dtype) plus half a unit in the last
    place of the largest expected entry (the rounding of the result itself). PyTorch's error per
    element would be too strict a bound: by luck it is 0 in places."""
    assert actual.shape == expected.shape == same_math.shape, f"{what}: shapes differ"
    expected = expected.detach().to("cpu", torch.float64)
    error = (actual.detach().to("cpu", torch.float64) - expected).abs()
    if error.numel() == 0:
        return
    pytorch_error = (same_math.detach().to("cpu", torch.float64) - expected).abs().max().item()
    atol = 0.5 * torch.finfo(actual.dtype).eps * expected.abs().max().item()
    allowed = 2 * pytorch_error + atol
    bad = ~(error <= allowed)  # NaN counts as bad
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {bad.numel()} elements exceed twice PyTorch's "
                           f"error in {actual.dtype} ({pytorch_error:.3e}) + {atol:.1e}; worst "
                           f"{error[bad].max():.3e} where {allowed:.3e} was allowed")


def assert_nontrivial(tensor, what=""):
    """A gradient that is all zero (or not finite) would make a comparison meaningless."""
    if tensor.numel() == 0:
        return
    assert torch.isfinite(tensor).all(), f"{what} is not finite"
    assert tensor.abs().max() > 0, f"{what} is identically zero"


def preactivations(problem: Problem, t0=0, nonlinearity="tanh"):
    """All pre-activations of active units, computed with a plain loop (float64)."""
    d = lambda t: None if t is None else t.detach().double().cpu()  # noqa: E731
    x, w_ih, w_hh = d(problem.input), d(problem.weight_ih), d(problem.weight_hh)
    w_hh = torch.where(allowed_mask(problem.periods, problem.module_sizes), w_hh, torch.zeros(()))
    per = unit_periods(problem.periods, problem.module_sizes)
    h = d(problem.hx) if problem.hx is not None else torch.zeros(x.shape[1], problem.hidden, dtype=torch.float64)
    f = torch.tanh if nonlinearity == "tanh" else torch.relu
    pres = []
    for s in range(x.shape[0]):
        active = (t0 + s) % per == 0
        pre = x[s] @ w_ih.t() + h @ w_hh.t()
        for b in (problem.bias_ih, problem.bias_hh):
            if b is not None:
                pre = pre + d(b)
        pres.append(pre[:, active].flatten())
        h = torch.where(active, f(pre), h)
    return torch.cat(pres) if pres else torch.zeros(0, dtype=torch.float64)


def run_in_threads(work, count):
    """Calls work(i) for i in range(count), each on a thread of its own, all at once, and fails
    with every exception they raised (in a thread, an assertion would only be printed)."""
    errors = []

    def run(i):
        try:
            work(i)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
