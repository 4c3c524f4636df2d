"""The shape catalogue: layouts and configurations that reach every kernel variant (register and
shared-memory limits of the CUDA kernels, the CPU's register-blocked tiles, many held terms, wide
and one-unit groups, long sequences, large batches), and the machinery that checks a device's
kernel on them against the float64 reference. test_cuda.py runs it on a GPU, test_catalogue.py on
the CPU."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import torch

import cwrnn_ext
from cwrnn_ext import reference
from helpers import HALF_TYPES, assert_half_close, tolerance
from helpers import assert_close as assert_close_same_dtype

# name -> (hidden_size, periods, module_sizes or None for the even split)
LAYOUTS = {
    "exp4": (30, [1, 2, 4, 8], None),                  # 8, 8, 7, 7
    "nonharmonic": (15, [1, 3, 5], None),
    "repeated": (12, [2, 2, 6], [3, 5, 4]),            # one group of 8 units with period 2
    "equal": (24, [4, 4, 4], None),                    # one full group: a plain RNN ticking every 4
    "unequal": (40, [1, 2, 4, 8], [20, 10, 6, 4]),
    "tiny": (3, [1, 2, 4], None),                      # k = 1
    "wide": (200, [3], None),                          # W_ii 160 KB (float32): > 48 KB opt-in
    "chunks": (600, [1, 2], [560, 40]),                # k = 560 > 512 threads: column chunks
    "big_k": (1024, [1, 1], None),                     # W_ii 4 MB: not in shared memory
    "g8_256": (256, [1, 2, 4, 8, 16, 32, 64, 128], None),   # k = 32, the H=256 speed target
    "g8_1024": (1024, [1, 2, 4, 8, 16, 32, 64, 128], None),  # k = 128: W_ii slices in registers
    "many_periods": (39, list(range(1, 14)), None),     # 12 held terms: past the register slots
    "boundary": (240, [2], None),                      # k = 240: W_ii in registers + all of shared memory
}


@dataclass(frozen=True)
class Config:
    layout: str = "exp4"
    T: int = 7
    B: int = 3
    I: int = 5
    t0: int = 0
    lengths: bool = False
    hx: bool = True
    bias: bool = True
    nonlinearity: str = "tanh"
    noncontig: bool = False

    def id(self) -> str:
        default = Config()
        parts = [self.layout] + [f"{f}={getattr(self, f)}" for f in ("T", "B", "I", "t0", "lengths", "hx",
                                                                      "bias", "nonlinearity", "noncontig")
                                 if getattr(self, f) != getattr(default, f)]
        return "-".join(parts)


BASE = Config()
CONFIGS = (
    [BASE]
    + [replace(BASE, T=t) for t in (1, 64, 130)]
    + [replace(BASE, B=b) for b in (1, 16, 33)]
    + [replace(BASE, layout=name) for name in LAYOUTS if name != "exp4"]
    + [replace(BASE, t0=t0) for t0 in (1, 5)]
    + [
        replace(BASE, lengths=True),
        replace(BASE, hx=False),
        replace(BASE, bias=False),
        replace(BASE, nonlinearity="relu"),
        replace(BASE, noncontig=True),
        replace(BASE, I=0),
        # combinations
        Config("exp4", T=130, B=33, t0=5, lengths=True, nonlinearity="relu"),
        Config("nonharmonic", T=64, B=16, t0=1, lengths=True, hx=False, noncontig=True),
        Config("repeated", T=130, B=3, t0=1, bias=False, nonlinearity="relu"),
        Config("equal", T=64, B=33, t0=5, lengths=True, noncontig=True),
        Config("unequal", T=64, B=16, t0=1, hx=False, bias=False),
        Config("tiny", T=130, B=33, t0=1, lengths=True),
        Config("wide", T=9, B=16, t0=1, lengths=True, nonlinearity="relu"),
        Config("chunks", T=7, B=3, t0=1, lengths=True),
        Config("big_k", T=7, B=33, t0=1, lengths=True, noncontig=True),
        Config("big_k", T=7, B=1, hx=False, nonlinearity="relu"),
        Config("g8_1024", T=64, B=33, t0=3, lengths=True),
        Config("g8_256", T=130, B=32, t0=1),
        Config("many_periods", T=64, B=5, t0=2, lengths=True, nonlinearity="relu"),
        # batches past one row per SM (132 SMs on an H100) put several rows in a block
        Config("exp4", T=20, B=1100, t0=1, lengths=True),
        Config("wide", T=9, B=1100, t0=2, lengths=True),
        Config("big_k", T=3, B=1100),
    ]
)
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@dataclass
class Problem:
    config: Config
    periods: list
    module_sizes: Optional[list]
    args: dict  # clockwork_rnn keyword arguments (tensors on the CPU, float64, no grad)


def make_problem(config: Config, seed: int = 0) -> Problem:
    hidden, periods, module_sizes = LAYOUTS[config.layout]
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale

    T, B, I = config.T, config.B, config.I
    weight_hh = randn(hidden, hidden, scale=0.7 / math.sqrt(hidden))  # contractive: no blow-up over T
    args = dict(
        input=randn(T, B, I),
        hx=randn(B, hidden, scale=0.5) if config.hx else None,
        weight_ih=randn(hidden, I, scale=1.0 / math.sqrt(max(I, 1))),
        weight_hh=weight_hh,
        bias_ih=randn(hidden, scale=0.1) if config.bias else None,
        bias_hh=randn(hidden, scale=0.1) if config.bias else None,
        periods=periods,
        module_sizes=module_sizes,
        t0=config.t0,
        nonlinearity=config.nonlinearity,
        lengths=None,
    )
    if config.lengths:
        lengths = torch.randint(0, T + 1, (B,), generator=gen)
        lengths[0] = T
        if B > 1:
            lengths[-1] = 0
        args["lengths"] = lengths
    return Problem(config, periods, module_sizes, args)


TENSORS = ("input", "hx", "weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _noncontiguous(t: torch.Tensor) -> torch.Tensor:
    """The same values in a non-contiguous layout (a transposed or strided view)."""
    if t.dim() >= 2:
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    return torch.stack([t, t], dim=1)[:, 0]


def prepare(problem: Problem, dtype, device, requires_grad=True):
    """The problem's tensors cast to dtype (rounded once), on device, as leaves; lengths on device."""
    kwargs = dict(problem.args)
    leaves = {}
    for name in TENSORS:
        t = kwargs[name]
        if t is None:
            continue
        t = t.to(dtype).to(device)
        if problem.config.noncontig:
            t = _noncontiguous(t)
            if t.numel() > 1 and t.dim() >= 2:
                assert not t.is_contiguous()
        t = t.detach().requires_grad_(requires_grad)
        kwargs[name] = leaves[name] = t
    if kwargs["lengths"] is not None:
        kwargs["lengths"] = kwargs["lengths"].to(device)
    return kwargs, leaves


def upstream(problem: Problem, dtype, seed: int = 1):
    """Fixed random upstream gradients for output and h_n (rounded to dtype, as float64 on the CPU)."""
    hidden = LAYOUTS[problem.config.layout][0]
    gen = torch.Generator().manual_seed(seed)
    T, B = problem.config.T, problem.config.B
    return (torch.randn(T, B, hidden, generator=gen, dtype=torch.float64).to(dtype).double(),
            torch.randn(B, hidden, generator=gen, dtype=torch.float64).to(dtype).double())


def run(fn, kwargs, leaves, grad_out, grad_hn):
    """(output, h_n, {name: grad}) of fn under the given upstream gradients."""
    output, h_n = fn(**kwargs)
    names = list(leaves)
    loss = (output * grad_out.to(output)).sum() + (h_n * grad_hn.to(h_n)).sum()
    grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True) if names else []
    return output.detach(), h_n.detach(), {n: g for n, g in zip(names, grads)}


def longest_sum(config: Config) -> int:
    """The most terms any result sums: T*B for the weight gradients, H for the rest."""
    return max(config.T * config.B, LAYOUTS[config.layout][0])


def assert_close(actual, expected, tol, what):
    """Element-wise, in float64 on the CPU; tol = (rtol, atol)."""
    assert_close_same_dtype(actual.detach().to("cpu", torch.float64), expected.detach().to("cpu", torch.float64),
                            what=what, tol=tol)


def reference_results(problem: Problem, dtype, device="cpu", compute_dtype=torch.float64):
    """The reference from the inputs as rounded to dtype: by default in float64 on the CPU (the
    truth); with compute_dtype=dtype on the GPU, PyTorch's own math in that dtype."""
    kwargs, leaves = prepare(problem, dtype, device, requires_grad=False)
    kwargs = {k: (v.detach().to(compute_dtype).requires_grad_() if isinstance(v, torch.Tensor) and k in TENSORS
                  else v) for k, v in kwargs.items()}
    leaves = {k: kwargs[k] for k in leaves}
    return run(reference.clockwork_rnn, kwargs, leaves, *upstream(problem, dtype))


def check_against(problem, dtype, expected, tol=None, device="cuda"):
    """The kernel for `device` in dtype against expected (float64 results). float32/float64:
    element-wise tol (default: helpers.tolerance over the problem's longest sum); half types:
    assert_half_close against PyTorch's own math."""
    kwargs, leaves = prepare(problem, dtype, device)
    output, h_n, grads = run(cwrnn_ext.clockwork_rnn, kwargs, leaves, *upstream(problem, dtype))
    assert output.device.type == device and output.dtype == dtype and h_n.dtype == dtype
    exp_output, exp_h_n, exp_grads = expected
    if dtype in HALF_TYPES:
        same_output, same_h_n, same_grads = reference_results(problem, dtype, device, dtype)
        compare = lambda got, exp, same, what: assert_half_close(got, exp, same, what)  # noqa: E731
    else:
        same_output, same_h_n, same_grads = None, None, {name: None for name in grads}
        tol = tol or tolerance(dtype, longest_sum(problem.config))
        compare = lambda got, exp, same, what: assert_close(got, exp, tol, what)  # noqa: E731
    compare(output, exp_output, same_output, "output")
    compare(h_n, exp_h_n, same_h_n, "h_n")
    for name, grad in grads.items():
        assert grad is not None and grad.dtype == dtype, f"grad of {name}"
        compare(grad, exp_grads[name], same_grads[name], f"grad of {name}")


