"""bfloat16 and float16 on the CPU (half storage, float32 arithmetic and state) and torch.autocast.

Accuracy criterion, per output and per gradient: helpers.assert_half_close, against the float64
reference run on the same (rounded) inputs and upstream gradients, with the same math in PyTorch in
that dtype (the reference run in it) as the yardstick.
"""
import pytest
import torch
from torch import nn

import cwrnn_ext
from cwrnn_ext import reference
from helpers import assert_half_close, make_problem, preactivations, random_lengths, upstream_grads

HALF = [torch.bfloat16, torch.float16]
# (T, B, I, periods, module_sizes): small groups and register-blocked ones (k >= 32)
LAYOUTS = [(23, 5, 4, [1, 2, 5], [3, 4, 2]), (31, 6, 7, [1, 2, 4, 8], [40, 33, 17, 8])]


def rounded_problem(dtype, case, seed, as_dtype, nonlinearity="tanh"):
    """A random problem rounded to `dtype`, then held in `as_dtype`. For relu, one whose
    pre-activations stay clear of relu's kink: a rounding that flips a unit there changes the
    result by O(1), in any implementation, so comparing errors there would measure luck."""
    T, B, I, periods, sizes = case
    problem = make_problem(T, B, I, sum(sizes), periods, sizes, dtype=torch.float64, seed=seed,
                           weight_scale=0.2 if nonlinearity == "relu" else 0.5)
    if nonlinearity == "relu":
        sign = torch.randint(0, 2, (sum(sizes),), generator=torch.Generator().manual_seed(seed)) * 2 - 1
        with torch.no_grad():
            problem.bias_ih.copy_(1.5 * sign)
            problem.bias_hh.zero_()
            problem.weight_ih.mul_(0.3)
        assert preactivations(problem, 1, "relu").abs().min() > 0.09
    for name, t in problem.tensors():
        setattr(problem, name, t.detach().to(dtype).to(as_dtype).requires_grad_())
    return problem


def outputs_and_grads(fn, problem, go, gh, **kw):
    output, h_n = fn(*problem.args(**kw))
    grads = torch.autograd.grad([output, h_n], [t for _, t in problem.tensors()],
                                [go.to(output.dtype), gh.to(h_n.dtype)])
    return {"output": output, "h_n": h_n, **{f"grad {n}": g for (n, _), g in zip(problem.tensors(), grads)}}


@pytest.mark.parametrize("use_lengths", [False, True], ids=["nolengths", "lengths"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("case", LAYOUTS, ids=["small-groups", "large-groups"])
@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_within_twice_the_error_of_pytorch_in_that_dtype(dtype, case, nonlinearity, use_lengths):
    T, B = case[0], case[1]
    kw = dict(t0=1, nonlinearity=nonlinearity, lengths=random_lengths(T, B, 2) if use_lengths else None)
    exact = rounded_problem(dtype, case, 0, torch.float64, nonlinearity)
    go, gh = upstream_grads(torch.empty(T, B, sum(case[4])), torch.empty(B, sum(case[4])), seed=17)
    go, gh = go.to(dtype).double(), gh.to(dtype).double()  # the same upstream values for all three runs
    expected = outputs_and_grads(reference.clockwork_rnn, exact, go, gh, **kw)
    kernel = outputs_and_grads(cwrnn_ext.clockwork_rnn, rounded_problem(dtype, case, 0, dtype, nonlinearity),
                               go, gh, **kw)
    same_dtype = outputs_and_grads(reference.clockwork_rnn, rounded_problem(dtype, case, 0, dtype, nonlinearity),
                                   go, gh, **kw)
    for name, want in expected.items():
        assert kernel[name].dtype == dtype, name
        assert_half_close(kernel[name], want, same_dtype[name], name)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_opcheck_half(dtype):
    problem = rounded_problem(dtype, LAYOUTS[0], 3, dtype)
    x, hx, w_ih, w_hh, b_ih, b_hh = (t.detach() for _, t in problem.tensors())
    args = (x, hx, w_ih, w_hh, b_ih + b_hh, [1, 2, 5], [3, 4, 2], 1, "tanh", torch.tensor([23, 0, 5, 9, 1]))
    torch.library.opcheck(torch.ops.cwrnn_ext.forward, args)
    output, h_n = torch.ops.cwrnn_ext.forward(*args)
    torch.library.opcheck(torch.ops.cwrnn_ext.backward,
                          (torch.randn_like(output), torch.randn_like(h_n), x, hx, w_ih, w_hh, output,
                           *args[5:]))


# ---------------------------------------------------------------------------------------------
# autocast
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_autocast_runs_like_nn_rnn(dtype):
    """After a Linear inside torch.autocast, the layer runs in the region's dtype as nn.RNN does,
    and its gradients reach the float32 parameters, equal to running it on cast copies."""
    torch.manual_seed(4)
    linear = nn.Linear(5, 8)
    model = cwrnn_ext.ClockworkRNN(8, 40, periods=[1, 2, 4], module_sizes=[16, 16, 8])
    rnn = nn.RNN(8, 40)
    x = torch.randn(17, 3, 5)
    with torch.autocast("cpu", dtype=dtype):
        features = linear(x)
        output, h_n = model(features)
        rnn_output, rnn_h_n = rnn(features)
    assert output.dtype == rnn_output.dtype == dtype and h_n.dtype == rnn_h_n.dtype == dtype
    params = list(model.parameters())
    grads = torch.autograd.grad(output.float().square().sum() + h_n[0].float().sum(), params)
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)

    # The same computation by hand: the op's arguments cast to the dtype (the layer passes one bias,
    # bias_ih + bias_hh summed in float32, so it is rounded once), gradients cast back.
    w_ih, w_hh, b_ih, b_hh = params
    cast = [w.detach().to(dtype).requires_grad_() for w in (w_ih, w_hh)]
    bias = (b_ih.detach() + b_hh.detach()).requires_grad_()
    x_cast = features.detach()
    out_cast, hn_cast = torch.ops.cwrnn_ext.forward(x_cast, x_cast.new_zeros(3, 40), *cast, bias.to(dtype),
                                                    model.periods, model.module_sizes, 0, "tanh", None)
    grads_cast = torch.autograd.grad(out_cast.float().square().sum() + hn_cast.float().sum(), cast + [bias])
    assert torch.equal(output, out_cast) and torch.equal(h_n[0], hn_cast)
    for g, gc in zip(grads, [g.float() for g in grads_cast] + [grads_cast[2]]):
        assert torch.equal(g, gc)


def test_autocast_on_the_op_itself():
    """A direct call of the op inside autocast casts its float32 arguments (the op's autocast
    kernel), and leaves float64 ones alone, as autocast does."""
    problem = make_problem(9, 2, 3, 6, [1, 3], [4, 2], dtype=torch.float32, seed=5, requires_grad=False)
    args = (problem.input, problem.hx, problem.weight_ih, problem.weight_hh, None, [1, 3], [4, 2], 0,
            "tanh", None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, h_n = torch.ops.cwrnn_ext.forward(*args)
        wide = [a.double() if isinstance(a, torch.Tensor) else a for a in args]
        output64, _ = torch.ops.cwrnn_ext.forward(*wide)
    assert output.dtype == h_n.dtype == torch.bfloat16 and output64.dtype == torch.float64
    expected, _ = torch.ops.cwrnn_ext.forward(*[a.to(torch.bfloat16) if isinstance(a, torch.Tensor) else a
                                               for a in args])
    assert torch.equal(output, expected)


@pytest.mark.slow
def test_autocast_compiles_to_the_same_results():
    """torch.compile(fullgraph=True) of a layer inside torch.autocast: the op's autocast kernel is
    traced, values and gradients equal eager."""
    torch._dynamo.reset()
    model = cwrnn_ext.ClockworkRNN(8, 40, periods=[1, 2, 4])
    x = torch.randn(17, 3, 8)

    def loss(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output, h_n = model(x)
        assert output.dtype == torch.bfloat16
        return output.float().sum() + h_n.float().sum()

    eager, compiled = loss(x), torch.compile(loss, fullgraph=True)(x)
    assert torch.equal(eager, compiled)
    params = list(model.parameters())
    for a, b in zip(torch.autograd.grad(eager, params), torch.autograd.grad(compiled, params)):
        assert torch.equal(a, b)
