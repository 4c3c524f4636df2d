"""Finite-difference gradient checks (kernel and reference) and torch.library.opcheck on the ops."""

import pytest
import torch

import cwrnn_ext
from cwrnn_ext import reference
from helpers import DEVICES, make_problem, preactivations

IMPLEMENTATIONS = {"kernel": cwrnn_ext.clockwork_rnn, "reference": reference.clockwork_rnn}

# (periods, module_sizes, hidden, t0, lengths)
CASES = {
    "harmonic": ([1, 2, 4], None, 6, 0, None),
    "unequal-t0-lengths": ([1, 2, 3], [1, 3, 1], 5, 1, [6, 0, 3]),
    "repeated-slowfirst": ([2, 2, 5], [2, 1, 2], 5, 3, [4, 6, 1]),
}


def relu_safe_problem(T, B, I, H, periods, sizes, t0, device, margin=1e-3):
    """A seed whose active pre-activations are all at least `margin` away from relu's kink
    (finite differences with eps=1e-6 cannot straddle it) and take both signs."""
    for seed in range(200):
        problem = make_problem(T, B, I, H, periods, sizes, dtype=torch.float64, device=device,
                               seed=seed, weight_scale=1.0)
        pre = preactivations(problem, t0, "relu")
        if pre.abs().min() > margin and (pre > 0).any() and (pre < 0).any():
            return problem
    raise AssertionError("no suitable seed found for the relu gradcheck")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_gradcheck(impl, case, nonlinearity, device, forward_path):
    periods, sizes, hidden, t0, lengths = CASES[case]
    T, B, I = 6, 3, 2
    if nonlinearity == "relu":
        problem = relu_safe_problem(T, B, I, hidden, periods, sizes, t0, device)
    else:
        problem = make_problem(T, B, I, hidden, periods, sizes, dtype=torch.float64, device=device, seed=1)
    lengths = None if lengths is None else torch.tensor(lengths, device=device)
    fn = IMPLEMENTATIONS[impl]
    sizes_arg = problem.module_sizes if problem.explicit_sizes else None

    def f(x, h, w_ih, w_hh, b_ih, b_hh):
        return fn(x, h, w_ih, w_hh, b_ih, b_hh, periods, sizes_arg, t0, nonlinearity, lengths)

    inputs = [t for _, t in problem.tensors()]
    assert len(inputs) == 6 and all(t.requires_grad for t in inputs)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_gradcheck_without_hx_and_bias(impl, device):
    problem = make_problem(5, 2, 3, 4, [1, 3], [3, 1], dtype=torch.float64, device=device, seed=4,
                           hx=False, bias_ih=False, bias_hh=True)
    fn = IMPLEMENTATIONS[impl]

    def f(x, w_ih, w_hh, b_hh):
        return fn(x, None, w_ih, w_hh, None, b_hh, [1, 3], [3, 1], 2, "tanh", None)

    inputs = [problem.input, problem.weight_ih, problem.weight_hh, problem.bias_hh]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_double_backward_is_correct_or_refused():
    """Second derivatives (gradient penalties, MAML) through the kernel must match the reference,
    or be refused with an error; never silently wrong. Today the backward op has no autograd
    kernel, so create_graph=True yields a graph that silently drops every path through it."""
    problem = make_problem(4, 2, 3, 4, [1, 2], dtype=torch.float64, seed=12, bias_ih=False, bias_hh=False)

    def second_derivatives(fn):
        output, h_n = fn(*problem.args())
        (g,) = torch.autograd.grad(output.pow(2).sum() + h_n.pow(2).sum(), problem.weight_ih, create_graph=True)
        return torch.autograd.grad(g.pow(2).sum(), [t for _, t in problem.tensors()],
                                   allow_unused=True, materialize_grads=True)

    expected = second_derivatives(reference.clockwork_rnn)
    assert all(torch.isfinite(e).all() for e in expected)  # the reference's are there to be had
    # The kernel refuses loudly (its backward op has no derivative) instead of returning
    # silently wrong second derivatives.
    with pytest.raises(RuntimeError, match=r"double backward.*not supported.*reference\.clockwork_rnn"):
        second_derivatives(cwrnn_ext.clockwork_rnn)


# ---------------------------------------------------------------------------------------------
# opcheck: schema, fake (meta) kernels, autograd registration, AOT dispatch.
# ---------------------------------------------------------------------------------------------

def op_arguments(device, T=6, B=3, I=4, H=7, bias=True, lengths=True, requires_grad=True, seed=0):
    problem = make_problem(T, B, I, H, [1, 2, 3], [2, 3, 2], dtype=torch.float64, device=device,
                           seed=seed, requires_grad=requires_grad)
    bias_t = (problem.bias_ih.detach() + problem.bias_hh.detach()).requires_grad_(requires_grad) if bias else None
    lengths_t = torch.tensor([T, 0, T // 2][:B], dtype=torch.int64, device=device) if lengths else None
    return (problem.input, problem.hx, problem.weight_ih, problem.weight_hh, bias_t, [1, 2, 3],
            [2, 3, 2], 1, "tanh", lengths_t)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lengths", [False, True], ids=["nolengths", "lengths"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("requires_grad", [False, True], ids=["nograd", "grad"])
def test_opcheck_forward(requires_grad, bias, lengths, device, forward_path):
    args = op_arguments(device, bias=bias, lengths=lengths, requires_grad=requires_grad)
    torch.library.opcheck(torch.ops.cwrnn_ext.forward, args)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_forward_relu_and_empty(device, forward_path):
    args = list(op_arguments(device))
    args[8] = "relu"
    torch.library.opcheck(torch.ops.cwrnn_ext.forward, tuple(args))
    empty = op_arguments(device, T=0, lengths=False)
    torch.library.opcheck(torch.ops.cwrnn_ext.forward, empty)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lengths", [False, True], ids=["nolengths", "lengths"])
def test_opcheck_backward(lengths, device):
    args = op_arguments(device, lengths=lengths, requires_grad=False)
    output, h_n = torch.ops.cwrnn_ext.forward(*args)
    gen = torch.Generator().manual_seed(3)
    grad_output = torch.randn(output.shape, generator=gen, dtype=output.dtype).to(device)
    grad_h_n = torch.randn(h_n.shape, generator=gen, dtype=h_n.dtype).to(device)
    input, hx, weight_ih, weight_hh, _, periods, sizes, t0, nonlinearity, lengths_t = args
    torch.library.opcheck(torch.ops.cwrnn_ext.backward,
                          (grad_output, grad_h_n, input, hx, weight_ih, weight_hh, output, periods,
                           sizes, t0, nonlinearity, lengths_t))
