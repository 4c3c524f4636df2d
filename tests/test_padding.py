"""Padding is never read: whatever lies in `input` past a sequence's length (NaN, inf, the
leftovers of torch.empty) reaches no output and no gradient, in the kernel and in the reference."""
import pytest
import torch

import cwrnn_ext
from cwrnn_ext import reference
from helpers import DEVICES, assert_close, assert_nontrivial, make_problem, run, upstream_grads

# The module-major schedule's own machinery: the rule would run most of these shapes time-major.
pytestmark = pytest.mark.usefixtures("module_major_path")

IMPLEMENTATIONS = {"kernel": cwrnn_ext.clockwork_rnn, "reference": reference.clockwork_rnn}
T, B, I, H = 13, 5, 3, 8
PERIODS, SIZES = [1, 2, 4, 5], [2, 3, 2, 1]
LENGTHS = [13, 0, 6, 1, 9]


def poisoned(problem, padding, lengths):
    """The same problem with `padding` written past each sequence's length."""
    valid = torch.arange(T, device=lengths.device)[:, None] < lengths[None, :]
    x = problem.input.detach()
    if padding == "empty":
        dirty = torch.empty_like(x)  # whatever the allocator hands out, then the valid steps
        dirty[valid] = x[valid]
    else:
        dirty = x.masked_fill(~valid[:, :, None], float(padding))
    return make_problem_like(problem, dirty)


def make_problem_like(problem, input):
    copy = make_problem(T, B, I, H, PERIODS, SIZES, dtype=input.dtype, device=input.device, seed=0)
    for name, tensor in problem.tensors():
        setattr(copy, name, tensor.detach().clone().requires_grad_())
    copy.input = input.clone().requires_grad_()
    return copy


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("padding", ["nan", "inf", "-inf", "empty"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_padding_reaches_nothing(impl, dtype, nonlinearity, padding, device):
    fn = IMPLEMENTATIONS[impl]
    lengths = torch.tensor(LENGTHS, device=device)
    clean = make_problem(T, B, I, H, PERIODS, SIZES, dtype=dtype, device=device, seed=21)
    with torch.no_grad():  # zero padding: the unpadded result, checked below sequence by sequence
        clean.input[torch.arange(T, device=device)[:, None] >= lengths[None, :]] = 0
    dirty = poisoned(clean, padding, lengths)
    if padding != "empty":
        assert not torch.isfinite(dirty.input).all()
    out_c, hn_c, grads_c = run(fn, clean, t0=3, nonlinearity=nonlinearity, lengths=lengths)
    out_d, hn_d, grads_d = run(fn, dirty, t0=3, nonlinearity=nonlinearity, lengths=lengths)
    assert torch.equal(out_d, out_c) and torch.equal(hn_d, hn_c)
    for name in grads_c:
        assert torch.isfinite(grads_d[name]).all(), f"grad {name} is not finite"
        assert torch.equal(grads_d[name], grads_c[name]), f"grad {name} depends on the padding"
    for name in ("weight_ih", "weight_hh", "input"):
        assert_nontrivial(grads_d[name], f"grad {name}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_padded_gradients_equal_unpadded_sequences(impl, device):
    """With NaN padding, the weight gradients are the sums of each sequence's gradients run alone,
    unpadded; the input gradient is each sequence's own, and 0 on the padding."""
    fn = IMPLEMENTATIONS[impl]
    lengths = torch.tensor(LENGTHS, device=device)
    problem = make_problem(T, B, I, H, PERIODS, SIZES, device=device, seed=22)
    dirty = poisoned(problem, "nan", lengths)
    out, h_n, grads = run(fn, dirty, t0=2, lengths=lengths)
    go, gh = upstream_grads(out, h_n)  # the ones run() used
    expected = {name: torch.zeros_like(t) for name, t in problem.tensors()}
    for b, n in enumerate(LENGTHS):
        if n == 0:
            expected["hx"][b] = gh[b]
            continue
        x_b = problem.input.detach()[:n, b:b + 1].clone().requires_grad_()
        h_b = problem.hx.detach()[b:b + 1].clone().requires_grad_()
        weights = [problem.weight_ih, problem.weight_hh, problem.bias_ih, problem.bias_hh]
        alone, alone_hn = fn(x_b, h_b, *weights, PERIODS, SIZES, 2, "tanh", None)
        assert_close(out[:n, b], alone[:, 0], what=f"output of sequence {b}")
        got = torch.autograd.grad([alone, alone_hn], [x_b, h_b] + weights, [go[:n, b:b + 1], gh[b:b + 1]])
        expected["input"][:n, b] = got[0][:, 0]
        expected["hx"][b] = got[1][0]
        for name, g in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), got[2:]):
            expected[name] += g
    for name in grads:
        assert_close(grads[name], expected[name], what=f"grad {name}")
