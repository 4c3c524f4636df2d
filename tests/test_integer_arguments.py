"""One rule for every integer argument (cwrnn_ext/integers.py): Python ints, NumPy integer scalars
and one-element integer tensors are accepted alike and give the same result; bools of every kind
and floats are refused with a TypeError that names the argument."""
import numpy as np
import pytest
import torch

import cwrnn_ext
from cwrnn_ext import reference

T, B, I, H = 5, 3, 4, 6
VALUE = 3  # valid for every argument below; True (== 1) is valid by value too, so only its type is wrong

INT_FORMS = {
    "int": lambda v: v,
    "numpy-int64": np.int64,
    "numpy-int32": np.int32,
    "numpy-uint8": np.uint8,
    "tensor-0d": torch.tensor,
    "tensor-1-element": lambda v: torch.tensor([v]),
    "tensor-int32": lambda v: torch.tensor(v, dtype=torch.int32),
}
REFUSED = {
    "bool": True,
    "numpy-bool": np.True_,
    "tensor-bool": torch.tensor(True),
    "tensor-bool-1-element": torch.tensor([True]),
    "float": 3.0,
    "numpy-float": np.float64(3.0),
    "tensor-float": torch.tensor(3.0),
    "tensor-2-elements": torch.tensor([3, 3]),
    "str": "3",
}


def _tensors():
    gen = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    return r(T, B, I), r(B, H), r(H, I), r(H, H) * 0.3, r(H), r(H)


def _functional(fn, periods=(1, 2), module_sizes=None, t0=0, lengths=None):
    return fn(*_tensors(), list(periods), module_sizes=module_sizes, t0=t0, lengths=lengths)


def _layer_forward(t0):
    torch.manual_seed(0)
    model = cwrnn_ext.ClockworkRNN(I, H, periods=[1, 2])
    return model(_tensors()[0], t0=t0)


def _cell_forward(t):
    torch.manual_seed(0)
    cell = cwrnn_ext.ClockworkRNNCell(I, H, periods=[1, 2])
    return cell(_tensors()[0][0], t=t)


def _layout(module):
    """What a constructor made of its integer arguments, with the Python types kept."""
    sizes = [(name, tuple(p.shape)) for name, p in module.named_parameters()]
    ints = (module.input_size, module.hidden_size, getattr(module, "num_layers", 1),
            *module.periods, *module.module_sizes)
    return [type(v) for v in ints], ints, sizes


# (argument, regex naming it, use(value) -> something to compare against use(VALUE))
ARGUMENTS = [
    ("t0-kernel", r"\bt0\b", lambda v: _functional(cwrnn_ext.clockwork_rnn, t0=v)),
    ("t0-reference", r"\bt0\b", lambda v: _functional(reference.clockwork_rnn, t0=v)),
    ("t0-layer", r"\bt0\b", _layer_forward),
    ("t-cell", r"(^|\W)t(\W|$)", _cell_forward),
    ("periods-kernel", r"\bperiods\b", lambda v: _functional(cwrnn_ext.clockwork_rnn, periods=[1, v])),
    ("periods-reference", r"\bperiods\b", lambda v: _functional(reference.clockwork_rnn, periods=[1, v])),
    ("module_sizes-kernel", r"\bmodule_sizes\b",
     lambda v: _functional(cwrnn_ext.clockwork_rnn, module_sizes=[v, H - VALUE])),
    ("lengths-kernel", r"\blengths\b", lambda v: _functional(cwrnn_ext.clockwork_rnn, lengths=[T, v, 1])),
    ("periods-layer", r"\bperiods\b", lambda v: _layout(cwrnn_ext.ClockworkRNN(I, H, periods=[1, v]))),
    ("module_sizes-cell", r"\bmodule_sizes\b",
     lambda v: _layout(cwrnn_ext.ClockworkRNNCell(I, H, periods=[1, 2], module_sizes=[v, H - VALUE]))),
    ("num_modules-layer", r"\bnum_modules\b", lambda v: _layout(cwrnn_ext.ClockworkRNN(I, H, num_modules=v))),
    ("hidden_size-layer", r"\bhidden_size\b", lambda v: _layout(cwrnn_ext.ClockworkRNN(I, v))),
    ("hidden_size-cell", r"\bhidden_size\b", lambda v: _layout(cwrnn_ext.ClockworkRNNCell(I, v))),
    ("input_size-layer", r"\binput_size\b", lambda v: _layout(cwrnn_ext.ClockworkRNN(v, H))),
    ("input_size-cell", r"\binput_size\b", lambda v: _layout(cwrnn_ext.ClockworkRNNCell(v, H))),
    ("num_layers-layer", r"\bnum_layers\b", lambda v: _layout(cwrnn_ext.ClockworkRNN(I, H, num_layers=v))),
]
ARGUMENT_IDS = [a[0] for a in ARGUMENTS]


def _assert_same(got, expected):
    if isinstance(expected, torch.Tensor):
        assert torch.equal(got, expected)
    elif isinstance(expected, (tuple, list)):
        assert type(got) is type(expected) and len(got) == len(expected)
        for g, e in zip(got, expected):
            _assert_same(g, e)
    else:
        assert type(got) is type(expected) and got == expected


@pytest.mark.parametrize("form", list(INT_FORMS), ids=list(INT_FORMS))
@pytest.mark.parametrize("argument,match,use", ARGUMENTS, ids=ARGUMENT_IDS)
def test_integer_forms_are_accepted_alike(argument, match, use, form):
    if argument == "t-cell" and form == "tensor-1-element":
        pytest.skip("for the cell a tensor with a dimension is one clock per row (tests/test_step.py)")
    _assert_same(use(INT_FORMS[form](VALUE)), use(VALUE))


@pytest.mark.parametrize("form", list(REFUSED), ids=list(REFUSED))
@pytest.mark.parametrize("argument,match,use", ARGUMENTS, ids=ARGUMENT_IDS)
def test_bools_and_non_integers_are_refused(argument, match, use, form):
    # For the cell an integer tensor with a dimension is one clock per row: of the wrong length,
    # it is refused for its shape (ValueError naming t), not its type.
    error = ValueError if (argument == "t-cell" and form == "tensor-2-elements") else TypeError
    with pytest.raises(error, match=match):
        use(REFUSED[form])


@pytest.mark.parametrize("periods", [np.array([1, 2]), torch.tensor([1, 2]), (np.int64(1), torch.tensor(2))],
                         ids=["numpy-array", "tensor", "mixed"])
def test_periods_as_arrays_and_tensors(periods):
    expected = _functional(cwrnn_ext.clockwork_rnn, periods=[1, 2])
    _assert_same(_functional(cwrnn_ext.clockwork_rnn, periods=periods), expected)
    model = cwrnn_ext.ClockworkRNN(I, H, periods=periods)
    assert model.periods == [1, 2] and all(type(p) is int for p in model.periods)


@pytest.mark.parametrize("periods", [np.array([True, True]), torch.tensor([True, True])],
                         ids=["numpy-bool-array", "bool-tensor"])
def test_bool_periods_are_refused(periods):
    """torch.tensor([True, True]) used to run as periods [1, 1]."""
    with pytest.raises(TypeError, match=r"\bperiods\b"):
        _functional(cwrnn_ext.clockwork_rnn, periods=periods)
    with pytest.raises(TypeError, match=r"\bperiods\b"):
        cwrnn_ext.ClockworkRNN(I, H, periods=periods)


def test_lengths_as_numpy_array():
    expected = _functional(cwrnn_ext.clockwork_rnn, lengths=torch.tensor([T, 3, 1]))
    _assert_same(_functional(cwrnn_ext.clockwork_rnn, lengths=np.array([T, 3, 1])), expected)
    with pytest.raises(TypeError, match=r"\blengths\b"):
        _functional(cwrnn_ext.clockwork_rnn, lengths=np.array([True, True, True]))
    with pytest.raises(TypeError, match=r"\blengths\b"):
        _functional(cwrnn_ext.clockwork_rnn, lengths=np.array([5.0, 3.0, 1.0]))


@pytest.mark.parametrize("argument,make", [
    ("hidden_size", lambda: cwrnn_ext.ClockworkRNN(I, np.int64(0))),
    ("input_size", lambda: cwrnn_ext.ClockworkRNN(torch.tensor(-1), H)),
    ("num_layers", lambda: cwrnn_ext.ClockworkRNN(I, H, num_layers=np.int32(0))),
    ("num_modules", lambda: cwrnn_ext.ClockworkRNN(I, H, num_modules=torch.tensor([0]))),
    ("t0", lambda: _functional(cwrnn_ext.clockwork_rnn, t0=np.int64(-1))),
    ("periods", lambda: _functional(cwrnn_ext.clockwork_rnn, periods=[1, torch.tensor(0)])),
], ids=lambda a: a if isinstance(a, str) else "")
def test_out_of_range_is_a_value_error_whatever_the_form(argument, make):
    """The type decides TypeError; a well-typed value out of range is still a ValueError."""
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        make()
