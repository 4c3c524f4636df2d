"""Misuse raises ValueError / TypeError / RuntimeError naming the offending argument (docs/contract.md, Bad input)."""
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import cwrnn_ext
from cwrnn_ext import reference
from helpers import assert_close, needs_cuda

ERRORS = (ValueError, TypeError, RuntimeError)
T, B, I, H = 5, 3, 4, 6


def base(dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64).to(dtype)  # noqa: E731
    return dict(input=r(T, B, I), hx=r(B, H), weight_ih=r(H, I), weight_hh=r(H, H) * 0.3,
                bias_ih=r(H), bias_hh=r(H), periods=[1, 2], module_sizes=[3, 3], t0=0,
                nonlinearity="tanh", lengths=None)


# (id, overrides of the functional arguments, regex the message must match, exception types)
FUNCTIONAL_CASES = [
    ("input-2d", dict(input=torch.randn(T, I)), r"input", ERRORS),
    ("input-4d", dict(input=torch.randn(T, B, I, 1)), r"input", ERRORS),
    ("input-not-tensor", dict(input=[[1.0]]), r"input", ERRORS),
    ("input-int", dict(input=torch.ones(T, B, I, dtype=torch.int64)), r"input", (TypeError,)),
    ("input-features", dict(input=torch.randn(T, B, I + 1)), r"weight_ih|input_size", ERRORS),
    ("weight_ih-rows", dict(weight_ih=torch.randn(H + 1, I)), r"weight_ih", ERRORS),
    ("weight_hh-nonsquare", dict(weight_hh=torch.randn(H, H + 1)), r"weight_hh", ERRORS),
    ("weight_hh-3d", dict(weight_hh=torch.randn(1, H, H)), r"weight_hh", ERRORS),
    ("bias_ih-shape", dict(bias_ih=torch.randn(H + 1)), r"bias_ih", ERRORS),
    ("bias_hh-shape", dict(bias_hh=torch.randn(1, H)), r"bias_hh", ERRORS),
    ("hx-batch", dict(hx=torch.randn(B + 1, H)), r"hx", ERRORS),
    ("hx-hidden", dict(hx=torch.randn(B, H - 1)), r"hx", ERRORS),
    ("hx-rank3", dict(hx=torch.randn(1, B, H)), r"hx", ERRORS),
    ("hx-rank1", dict(hx=torch.randn(H)), r"hx", ERRORS),
    ("hx-dtype", dict(hx=torch.randn(B, H, dtype=torch.float64)), r"hx.*dtype|dtype.*hx", (TypeError,)),
    ("weight_ih-dtype", dict(weight_ih=torch.randn(H, I, dtype=torch.float64)), r"weight_ih.*dtype", (TypeError,)),
    ("weight_hh-dtype", dict(weight_hh=torch.randn(H, H, dtype=torch.float64)), r"weight_hh.*dtype", (TypeError,)),
    ("bias_ih-dtype", dict(bias_ih=torch.randn(H, dtype=torch.float64)), r"bias_ih.*dtype", (TypeError,)),
    ("bias_hh-dtype", dict(bias_hh=torch.randn(H, dtype=torch.float64)), r"bias_hh.*dtype", (TypeError,)),
    ("periods-empty", dict(periods=[], module_sizes=None), r"periods", ERRORS),
    ("periods-zero", dict(periods=[0, 2]), r"periods", ERRORS),
    ("periods-negative", dict(periods=[-1, 2]), r"periods", ERRORS),
    ("periods-unsorted", dict(periods=[2, 1]), r"periods", ERRORS),
    ("periods-float", dict(periods=[1.5, 2]), r"periods", (TypeError,)),
    ("periods-bool", dict(periods=[True, 2]), r"periods", (TypeError,)),
    ("periods-none", dict(periods=None), r"periods", ERRORS),
    ("module_sizes-sum", dict(module_sizes=[3, 4]), r"module_sizes", ERRORS),
    ("module_sizes-count", dict(module_sizes=[6]), r"module_sizes", ERRORS),
    ("module_sizes-zero", dict(module_sizes=[0, 6]), r"module_sizes", ERRORS),
    ("module_sizes-negative", dict(module_sizes=[-1, 7]), r"module_sizes", ERRORS),
    ("hidden-smaller-than-modules", dict(periods=[1] * (H + 1), module_sizes=None), r"hidden_size", ERRORS),
    ("t0-negative", dict(t0=-1), r"t0", (ValueError,)),
    ("t0-float", dict(t0=1.5), r"t0", (TypeError,)),
    ("t0-integral-float", dict(t0=1.0), r"t0", (TypeError,)),
    ("t0-str", dict(t0="1"), r"t0", (TypeError,)),
    ("t0-bool", dict(t0=True), r"t0", (TypeError,)),
    ("t0-too-big", dict(t0=2 ** 64), r"t0", ERRORS),
    ("lengths-short", dict(lengths=torch.tensor([1, 2])), r"lengths", ERRORS),
    ("lengths-2d", dict(lengths=torch.tensor([[1, 2, 3]])), r"lengths", ERRORS),
    ("lengths-scalar", dict(lengths=torch.tensor(3)), r"lengths", ERRORS),
    ("lengths-float-tensor", dict(lengths=torch.tensor([1.0, 2.0, 3.0])), r"lengths", (TypeError,)),
    ("lengths-bool-tensor", dict(lengths=torch.tensor([True, False, True])), r"lengths", (TypeError,)),
    ("lengths-negative", dict(lengths=torch.tensor([1, -1, 2])), r"lengths", (ValueError,)),
    ("lengths-too-long", dict(lengths=torch.tensor([1, T + 1, 2])), r"lengths", (ValueError,)),
    ("lengths-not-a-sequence", dict(lengths="abc"), r"lengths", ERRORS),
    ("nonlinearity", dict(nonlinearity="sigmoid"), r"nonlinearity", (ValueError,)),
    ("nonlinearity-none", dict(nonlinearity=None), r"nonlinearity", ERRORS),
]


def call(fn, **overrides):
    a = base()
    a.update(overrides)
    return fn(a["input"], a["hx"], a["weight_ih"], a["weight_hh"], a["bias_ih"], a["bias_hh"], a["periods"],
              module_sizes=a["module_sizes"], t0=a["t0"], nonlinearity=a["nonlinearity"], lengths=a["lengths"])


def test_base_call_is_valid():
    for fn in (cwrnn_ext.clockwork_rnn, reference.clockwork_rnn):
        output, h_n = call(fn)
        assert output.shape == (T, B, H) and h_n.shape == (B, H)


@pytest.mark.parametrize("fn", [cwrnn_ext.clockwork_rnn, reference.clockwork_rnn], ids=["kernel", "reference"])
@pytest.mark.parametrize("overrides,match,errors", [c[1:] for c in FUNCTIONAL_CASES],
                         ids=[c[0] for c in FUNCTIONAL_CASES])
def test_functional_misuse(fn, overrides, match, errors):
    with pytest.raises(errors, match=match):
        call(fn, **overrides)


@pytest.mark.parametrize("lengths", [[1.5, 2.0, 3.0], [1, 2.7, 3], [True, False, True]],
                         ids=["floats", "mixed", "bools"])
def test_lengths_sequence_of_non_ints(lengths):
    """A float or bool tensor is rejected with a TypeError, so a Python list of floats/bools must be
    too, instead of being truncated silently (lengths=[1.5, 2, 3] would run as [1, 2, 3])."""
    with pytest.raises(TypeError, match="lengths"):
        call(cwrnn_ext.clockwork_rnn, lengths=lengths)


def test_unsupported_dtype_on_cpu():
    fp8 = torch.float8_e4m3fn  # a floating type no kernel supports
    a = {k: (v.to(fp8) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
         for k, v in base().items()}
    with pytest.raises(TypeError, match="dtype") as info:
        call(cwrnn_ext.clockwork_rnn, **a)
    assert "float8" in str(info.value)
    model = cwrnn_ext.ClockworkRNN(I, H, periods=[1, 2]).to(fp8)
    with pytest.raises(TypeError, match="dtype"):
        model(a["input"])


@pytest.mark.parametrize("steps,batch,hidden", [(1, 1, 2), (5, 2, 4)])
def test_huge_period_works(steps, batch, hidden):
    """A period of 2**62 is a valid (if odd) period: the module ticks only at t = 0. The kernel
    computes it like the reference (no int64 overflow in a stride period * B * I)."""
    gen = torch.Generator().manual_seed(0)
    args = (torch.randn(steps, batch, 3, generator=gen), torch.randn(batch, hidden, generator=gen),
            torch.randn(hidden, 3, generator=gen), torch.randn(hidden, hidden, generator=gen) * 0.3, None, None,
            [1, 2 ** 62])
    got = cwrnn_ext.clockwork_rnn(*args)
    expected = reference.clockwork_rnn(*args)
    for a, b in zip(got, expected):
        assert_close(a, b, what="period 2**62")


@needs_cuda
def test_device_mismatch():
    for name in ("hx", "weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        a = base()
        with pytest.raises(ERRORS, match=name):
            call(cwrnn_ext.clockwork_rnn, **{name: a[name].cuda()})
    model = cwrnn_ext.ClockworkRNN(I, H, periods=[1, 2], device="cuda")
    with pytest.raises(ERRORS, match="device|cuda|cpu"):
        model(base()["input"])


# ---------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------

CONSTRUCTOR_CASES = [
    ("hidden-smaller-than-periods", dict(hidden_size=2, periods=[1, 2, 4]), r"hidden_size"),
    ("hidden-smaller-than-num_modules", dict(hidden_size=4, num_modules=5), r"hidden_size"),
    ("hidden-zero", dict(hidden_size=0), r"hidden_size"),
    ("hidden-float", dict(hidden_size=4.0), r"hidden_size"),
    ("input-negative", dict(input_size=-1), r"input_size"),
    ("periods-zero", dict(periods=[0, 1]), r"periods"),
    ("periods-negative", dict(periods=[-2, 1]), r"periods"),
    ("periods-unsorted", dict(periods=[4, 2, 1]), r"periods"),
    ("periods-empty", dict(periods=[]), r"periods"),
    ("module_sizes-sum", dict(periods=[1, 2], module_sizes=[2, 3]), r"module_sizes"),
    ("module_sizes-count", dict(periods=[1, 2], module_sizes=[2, 2, 2]), r"module_sizes"),
    ("module_sizes-zero", dict(periods=[1, 2], module_sizes=[0, 6]), r"module_sizes"),
    ("num_modules-mismatch", dict(periods=[1, 2], num_modules=3), r"num_modules"),
    ("num_modules-zero", dict(num_modules=0), r"num_modules"),
    ("num_layers-zero", dict(num_layers=0), r"num_layers"),
    ("num_layers-negative", dict(num_layers=-1), r"num_layers"),
    ("num_layers-float", dict(num_layers=1.5), r"num_layers"),
    ("dropout-negative", dict(dropout=-0.1), r"dropout"),
    ("dropout-above-one", dict(dropout=1.5), r"dropout"),
    ("dropout-str", dict(dropout="0.5"), r"dropout"),
    ("nonlinearity", dict(nonlinearity="gelu"), r"nonlinearity"),
]


@pytest.mark.parametrize("overrides,match", [c[1:] for c in CONSTRUCTOR_CASES], ids=[c[0] for c in CONSTRUCTOR_CASES])
def test_constructor_misuse(overrides, match):
    kwargs = dict(input_size=I, hidden_size=H)
    kwargs.update(overrides)
    with pytest.raises(ERRORS, match=match):
        cwrnn_ext.ClockworkRNN(**kwargs)
    if set(overrides) & {"num_layers", "dropout"}:
        return  # arguments of the layer only
    with pytest.raises(ERRORS, match=match):
        cwrnn_ext.ClockworkRNNCell(**kwargs)


def model_and_input():
    model = cwrnn_ext.ClockworkRNN(I, H, periods=[1, 2], num_layers=2)
    return model, torch.randn(T, B, I)


FORWARD_CASES = [
    ("input-1d", lambda m, x: m(torch.randn(I)), r"input"),
    ("input-4d", lambda m, x: m(x[None]), r"input"),
    ("input-not-tensor", lambda m, x: m(x.tolist()), r"input"),
    ("input-features", lambda m, x: m(torch.randn(T, B, I + 1)), r"input_size|input"),
    ("hx-batch", lambda m, x: m(x, torch.randn(2, B + 1, H)), r"hx"),
    ("hx-layers", lambda m, x: m(x, torch.randn(1, B, H)), r"hx"),
    ("hx-hidden", lambda m, x: m(x, torch.randn(2, B, H + 1)), r"hx"),
    ("hx-rank2-batched", lambda m, x: m(x, torch.randn(2, H)), r"hx"),
    ("hx-rank3-unbatched", lambda m, x: m(x[:, 0], torch.randn(2, 1, H)), r"hx"),
    ("hx-not-tensor", lambda m, x: m(x, [[0.0] * H] * B), r"hx"),
    ("hx-dtype", lambda m, x: m(x, torch.randn(2, B, H, dtype=torch.float64)), r"hx.*dtype"),
    ("input-dtype", lambda m, x: m(x.double()), r"dtype"),
    ("t0-negative", lambda m, x: m(x, t0=-2), r"t0"),
    ("t0-float", lambda m, x: m(x, t0=0.5), r"t0"),
    ("lengths-shape", lambda m, x: m(x, lengths=torch.tensor([1, 2])), r"lengths"),
    ("lengths-too-long", lambda m, x: m(x, lengths=torch.tensor([1, 2, T + 1])), r"lengths"),
    ("lengths-negative", lambda m, x: m(x, lengths=torch.tensor([1, -2, 3])), r"lengths"),
    ("lengths-float", lambda m, x: m(x, lengths=torch.tensor([1.0, 2.0, 3.0])), r"lengths"),
    ("lengths-unbatched", lambda m, x: m(x[:, 0], lengths=torch.tensor([2])), r"lengths"),
    ("lengths-with-packed", lambda m, x: m(pack_padded_sequence(x, torch.tensor([5, 3, 1])),
                                           lengths=torch.tensor([5, 3, 1])), r"lengths"),
]


@pytest.mark.parametrize("fn,match", [c[1:] for c in FORWARD_CASES], ids=[c[0] for c in FORWARD_CASES])
def test_forward_misuse(fn, match):
    model, x = model_and_input()
    with pytest.raises(ERRORS, match=match):
        fn(model, x)


CELL_CASES = [
    ("input-3d", lambda c, x: c(x[None]), r"input"),
    ("input-not-tensor", lambda c, x: c(x.tolist()), r"input"),
    ("input-features", lambda c, x: c(torch.randn(B, I + 1)), r"input|weight_ih"),
    ("hx-rank", lambda c, x: c(x, torch.randn(H)), r"hx"),
    ("hx-batch", lambda c, x: c(x, torch.randn(B + 1, H)), r"hx"),
    ("hx-dtype", lambda c, x: c(x, torch.randn(B, H, dtype=torch.float64)), r"hx.*dtype"),
]


@pytest.mark.parametrize("fn,match", [c[1:] for c in CELL_CASES], ids=[c[0] for c in CELL_CASES])
def test_cell_misuse(fn, match):
    cell = cwrnn_ext.ClockworkRNNCell(I, H, periods=[1, 2])
    with pytest.raises(ERRORS, match=match):
        fn(cell, torch.randn(B, I))


@pytest.mark.parametrize("t,error", [(-1, ValueError), (0.5, TypeError)], ids=["negative", "float"])
def test_cell_bad_t_names_t(t, error):
    """The cell's clock argument is called `t`; its error must name `t` (today it says `t0`, an
    argument the cell does not have)."""
    cell = cwrnn_ext.ClockworkRNNCell(I, H, periods=[1, 2])
    with pytest.raises(error, match=r"(^|[^\w])t([^\w]|$)"):
        cell(torch.randn(B, I), t=t)


# ---------------------------------------------------------------------------------------------
# The raw ops, bypassing every Python check: a RuntimeError, never a crash.
# ---------------------------------------------------------------------------------------------

def op_args(**overrides):
    a = base()
    bias = a["bias_ih"] + a["bias_hh"]
    args = dict(input=a["input"], hx=a["hx"], weight_ih=a["weight_ih"], weight_hh=a["weight_hh"], bias=bias,
                periods=[1, 2], module_sizes=[3, 3], t0=0, nonlinearity="tanh", lengths=None)
    args.update(overrides)
    return list(args.values())


RAW_FORWARD_CASES = [
    ("input-2d", dict(input=torch.randn(T, I)), r"input"),
    ("hx-shape", dict(hx=torch.randn(B, H - 1)), r"hx"),
    ("hx-3d", dict(hx=torch.randn(1, B, H)), r"hx"),
    ("weight_ih-shape", dict(weight_ih=torch.randn(H, I - 1)), r"weight_ih"),
    ("weight_hh-shape", dict(weight_hh=torch.randn(H - 1, H)), r"weight_hh"),
    ("bias-shape", dict(bias=torch.randn(H + 2)), r"bias"),
    ("hx-dtype", dict(hx=torch.randn(B, H, dtype=torch.float64)), r"hx"),
    ("weight_hh-dtype", dict(weight_hh=torch.randn(H, H, dtype=torch.float64)), r"weight_hh"),
    ("bias-dtype", dict(bias=torch.randn(H, dtype=torch.float64)), r"bias"),
    ("module_sizes-sum", dict(module_sizes=[3, 4]), r"module_sizes"),
    ("module_sizes-short", dict(module_sizes=[6]), r"module_sizes"),
    ("module_sizes-zero", dict(module_sizes=[0, 6]), r"module_sizes"),
    ("module_sizes-negative", dict(module_sizes=[-3, 9]), r"module_sizes"),
    ("module_sizes-huge", dict(module_sizes=[2 ** 40, 6 - 2 ** 40]), r"module_sizes"),
    ("periods-empty", dict(periods=[], module_sizes=[]), r"periods"),
    ("periods-zero", dict(periods=[0, 2]), r"periods"),
    ("periods-unsorted", dict(periods=[2, 1]), r"periods"),
    ("t0-negative", dict(t0=-3), r"t0"),
    ("lengths-too-long", dict(lengths=torch.tensor([T + 1, 1, 1])), r"lengths"),
    ("lengths-negative", dict(lengths=torch.tensor([1, -1, 1])), r"lengths"),
    ("lengths-shape", dict(lengths=torch.tensor([1, 1])), r"lengths"),
    ("lengths-int32", dict(lengths=torch.tensor([1, 1, 1], dtype=torch.int32)), r"lengths"),
    ("lengths-float", dict(lengths=torch.tensor([1.0, 1.0, 1.0])), r"lengths"),
    ("float8", dict(input=torch.randn(T, B, I).to(torch.float8_e4m3fn), hx=torch.randn(B, H).to(torch.float8_e4m3fn),
                    weight_ih=torch.randn(H, I).to(torch.float8_e4m3fn),
                    weight_hh=torch.randn(H, H).to(torch.float8_e4m3fn), bias=None), r"Float8|float8"),
    ("int64", dict(input=torch.ones(T, B, I, dtype=torch.int64), hx=torch.ones(B, H, dtype=torch.int64),
                   weight_ih=torch.ones(H, I, dtype=torch.int64), weight_hh=torch.ones(H, H, dtype=torch.int64),
                   bias=None), r"Long|int64"),
]


@pytest.mark.parametrize("overrides,match", [c[1:] for c in RAW_FORWARD_CASES], ids=[c[0] for c in RAW_FORWARD_CASES])
def test_raw_forward_op_rejects(overrides, match):
    with pytest.raises(RuntimeError, match=match):
        torch.ops.cwrnn_ext.forward(*op_args(**overrides))


def test_raw_forward_op_valid_baseline():
    output, h_n = torch.ops.cwrnn_ext.forward(*op_args(lengths=torch.tensor([5, 0, 2])))
    assert output.shape == (T, B, H) and h_n.shape == (B, H)


def backward_args(**overrides):
    a = base()
    output, _ = torch.ops.cwrnn_ext.forward(*op_args())
    args = dict(grad_output=torch.randn(T, B, H), grad_h_n=torch.randn(B, H), input=a["input"], hx=a["hx"],
                weight_ih=a["weight_ih"], weight_hh=a["weight_hh"], output=output, periods=[1, 2],
                module_sizes=[3, 3], t0=0, nonlinearity="tanh", lengths=None)
    args.update(overrides)
    return list(args.values())


RAW_BACKWARD_CASES = [
    ("grad_output-shape", dict(grad_output=torch.randn(T, B, H + 1)), r"grad_output"),
    ("grad_h_n-shape", dict(grad_h_n=torch.randn(B + 1, H)), r"grad_h_n"),
    ("output-shape", dict(output=torch.randn(T + 1, B, H)), r"output"),
    ("grad_output-dtype", dict(grad_output=torch.randn(T, B, H, dtype=torch.float64)), r"grad_output"),
    ("hx-shape", dict(hx=torch.randn(B, H + 1)), r"hx"),
    ("module_sizes-sum", dict(module_sizes=[3, 4]), r"module_sizes"),
    ("lengths-too-long", dict(lengths=torch.tensor([1, T + 3, 1])), r"lengths"),
    ("lengths-negative", dict(lengths=torch.tensor([1, -1, 1])), r"lengths"),
    ("t0-negative", dict(t0=-1), r"t0"),
]


@pytest.mark.parametrize("overrides,match", [c[1:] for c in RAW_BACKWARD_CASES], ids=[c[0] for c in RAW_BACKWARD_CASES])
def test_raw_backward_op_rejects(overrides, match):
    with pytest.raises(RuntimeError, match=match):
        torch.ops.cwrnn_ext.backward(*backward_args(**overrides))


def test_raw_backward_op_valid_baseline():
    grads = torch.ops.cwrnn_ext.backward(*backward_args())
    assert [tuple(g.shape) for g in grads] == [(T, B, I), (B, H), (H, I), (H, H), (H,)]
