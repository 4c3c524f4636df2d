"""ClockworkRNN keeps nn.RNN's habits (docs/contract.md, ClockworkRNN): its positional arguments in
nn.RNN's order, all_weights, flatten_parameters(), the dropout warning and the dtype error that
says the fix; and errors for bad periods that name the index and the value."""
import inspect
import warnings

import pytest
import torch
from torch import nn

import cwrnn_ext
from helpers import assert_close

F64 = torch.float64


def test_positional_arguments_are_nn_rnns():
    """ClockworkRNN(10, 20, 2) is two layers, as nn.RNN(10, 20, 2); every positional argument
    lands where nn.RNN puts it."""
    assert cwrnn_ext.ClockworkRNN(10, 20, 2).num_layers == 2
    args = (3, 6, 2, "relu", False, True, 0.5, True)
    ours, theirs = cwrnn_ext.ClockworkRNN(*args), nn.RNN(*args)
    for name in ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first", "dropout",
                 "bidirectional"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


def test_clockwork_arguments_are_keyword_only():
    expected = ["input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first", "dropout",
                "bidirectional", "periods", "num_modules", "module_sizes", "device", "dtype"]
    parameters = inspect.signature(cwrnn_ext.ClockworkRNN).parameters
    assert list(parameters) == expected
    keyword_only = [n for n, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert keyword_only == expected[8:]
    with pytest.raises(TypeError):
        cwrnn_ext.ClockworkRNN(3, 6, 1, "tanh", True, False, 0.0, False, [1, 2])  # periods positionally
    model = cwrnn_ext.ClockworkRNN(3, 6, periods=[1, 3], module_sizes=[4, 2], num_modules=2)
    assert (model.periods, model.module_sizes) == ([1, 3], [4, 2])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, False), (2, True)])
def test_all_weights_as_nn_rnn(num_layers, bidirectional, bias):
    ours = cwrnn_ext.ClockworkRNN(3, 4, num_layers, bias=bias, bidirectional=bidirectional, periods=[1, 1])
    theirs = nn.RNN(3, 4, num_layers, bias=bias, bidirectional=bidirectional)
    theirs.load_state_dict(ours.state_dict())
    assert len(ours.all_weights) == len(theirs.all_weights) == num_layers * (2 if bidirectional else 1)
    for layer_ours, layer_theirs in zip(ours.all_weights, theirs.all_weights):
        assert len(layer_ours) == len(layer_theirs) == (4 if bias else 2)
        for a, b in zip(layer_ours, layer_theirs):
            assert isinstance(a, nn.Parameter) and torch.equal(a, b)
    # The parameters themselves (an optimiser given all_weights trains the model).
    params = {id(p) for p in ours.parameters()}
    assert {id(p) for layer in ours.all_weights for p in layer} == params


def test_flatten_parameters_is_a_no_op():
    model = cwrnn_ext.ClockworkRNN(3, 4, 2, periods=[1, 2])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pointers = [p.data_ptr() for p in model.parameters()]
    x = torch.randn(5, 2, 3)
    expected = model(x)[0]
    assert model.flatten_parameters() is None
    assert pointers == [p.data_ptr() for p in model.parameters()]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert torch.equal(model(x)[0], expected)


def test_dropout_with_one_layer_warns_as_nn_rnn():
    with pytest.warns(UserWarning) as ours:
        cwrnn_ext.ClockworkRNN(3, 4, dropout=0.5)
    with pytest.warns(UserWarning) as theirs:
        nn.RNN(3, 4, dropout=0.5)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    assert ours[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cwrnn_ext.ClockworkRNN(3, 4, 2, dropout=0.5)
        cwrnn_ext.ClockworkRNN(3, 4, dropout=0.0)


FIX = r"input must have the type torch\.float32.*got type torch\.float64.*\.to\(torch\.float32\).*\.to\(torch\.float64\)"


def test_float64_input_into_float32_layer_says_the_fix():
    model = cwrnn_ext.ClockworkRNN(3, 4, 2, periods=[1, 2])
    x = torch.randn(5, 2, 3, dtype=F64)
    with pytest.raises(ValueError, match=FIX):
        model(x)
    with pytest.raises(ValueError, match=FIX):
        model(x[:, 0])  # unbatched
    with pytest.raises(ValueError, match=FIX):
        cwrnn_ext.Stream(model).step(x[0])
    # Either fix works, and they agree.
    converted_input = model(x.to(torch.float32))[0]
    converted_model = model.to(F64)(x)[0]
    assert_close(converted_input, converted_model.to(torch.float32), what="the two fixes")


def test_float64_input_into_float32_cell_says_the_fix():
    cell = cwrnn_ext.ClockworkRNNCell(3, 4, periods=[1, 2])
    x = torch.randn(2, 3, dtype=F64)
    with pytest.raises(ValueError, match=FIX):
        cell(x)
    with pytest.raises(ValueError, match=FIX):
        cwrnn_ext.Stream(cell).chunk(x[None].expand(3, 2, 3))
    assert cell(x.float()).dtype == torch.float32


def test_autocast_is_not_a_dtype_mismatch():
    """Inside torch.autocast nn.RNN takes an input of another dtype than its weights; so does the layer."""
    model = cwrnn_ext.ClockworkRNN(3, 4, periods=[1, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = model(torch.randn(5, 2, 3, dtype=torch.bfloat16))
    assert output.dtype == torch.bfloat16


@pytest.mark.parametrize("periods,error,match", [
    ([1.0, 2.0], TypeError, r"^periods\[0\] must be an int, got float 1\.0$"),
    ([1, 2.5], TypeError, r"^periods\[1\] must be an int, got float 2\.5$"),
    ([1, "2"], TypeError, r"^periods\[1\] must be an int, got str '2'$"),
    ([1, True], TypeError, r"^periods\[1\] must be an int, got a bool \(True\)$"),
    ([1, 0], ValueError, r"^periods\[1\] must be a positive int below 2\*\*63, got 0$"),
    ([-3, 2], ValueError, r"^periods\[0\] must be a positive int below 2\*\*63, got -3$"),
    ([1, 2 ** 63], ValueError, r"^periods\[1\] must be a positive int below 2\*\*63, got 9223372036854775808$"),
    ([1, 4, 2], ValueError, r"periods\[1\] = 4 > periods\[2\] = 2"),
], ids=["floats", "one-float", "str", "bool", "zero", "negative", "too-big", "unsorted"])
def test_bad_period_names_its_index_and_value(periods, error, match):
    with pytest.raises(error, match=match):
        cwrnn_ext.ClockworkRNN(3, 6, periods=periods)
    with pytest.raises(error, match=match):
        cwrnn_ext.clockwork_rnn(torch.randn(2, 1, 3), None, torch.randn(6, 3), torch.randn(6, 6), None, None,
                                periods)


def test_bad_module_size_names_its_index_and_value():
    with pytest.raises(TypeError, match=r"^module_sizes\[1\] must be an int, got float 3\.0$"):
        cwrnn_ext.ClockworkRNN(3, 6, periods=[1, 2], module_sizes=[3, 3.0])


@pytest.mark.parametrize("method", [cwrnn_ext.ClockworkRNN.forward, cwrnn_ext.ClockworkRNNCell.forward,
                                    cwrnn_ext.Stream.step, cwrnn_ext.Stream.chunk],
                         ids=["ClockworkRNN", "ClockworkRNNCell", "Stream.step", "Stream.chunk"])
def test_public_forward_methods_have_docstrings(method):
    doc = inspect.getdoc(method)
    assert doc is not None and "input" in doc and len(doc.splitlines()) >= 3, method.__qualname__
