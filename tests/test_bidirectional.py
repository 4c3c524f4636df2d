"""bidirectional=True: nn.RNN's parameters, shapes and state order; the reverse direction runs
each sequence backwards within its length, its clock at t0 on the last valid step.

The oracle below runs the reference one sequence at a time on explicitly flipped slices, so it
shares nothing with the layer's batched reversal."""
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import cwrnn_ext
from cwrnn_ext import reference
from helpers import DEVICES, assert_close, assert_nontrivial
from test_semantics import randomize

F64 = torch.float64


def oracle(model, x, hx, t0, lengths):
    """(output (T, B, 2H), h_n (2L, B, H)) from reference.clockwork_rnn, sequence by sequence."""
    T, B, H, L = x.shape[0], x.shape[1], model.hidden_size, model.num_layers
    output = x.new_zeros(T, B, 2 * H)
    h_n = x.new_zeros(2 * L, B, H)
    for b in range(B):
        n = int(lengths[b])
        layer_in = x[:n, b:b + 1]
        for layer in range(L):
            directions = []
            for d, suffix in enumerate(("", "_reverse")):
                p = [getattr(model, f"{name}_l{layer}{suffix}") for name in
                     ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                h0 = hx[2 * layer + d, b:b + 1]
                seq = layer_in if d == 0 else layer_in.flip(0)
                out, h = reference.clockwork_rnn(seq, h0, *p, model.periods, model.module_sizes, t0,
                                                 model.nonlinearity)
                directions.append(out if d == 0 else out.flip(0))
                h_n[2 * layer + d, b] = h[0]
            layer_in = torch.cat(directions, dim=2)
        output[:n, b] = layer_in[:, 0]
    return output, h_n


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("t0", [0, 3])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_matches_reference_on_flipped_sequences(nonlinearity, t0, device):
    model = randomize(cwrnn_ext.ClockworkRNN(3, 7, periods=[1, 2, 3, 6], module_sizes=[2, 2, 1, 2],
                                             num_layers=2, nonlinearity=nonlinearity,
                                             bidirectional=True, dtype=F64, device=device), seed=3)
    T, B = 11, 5
    x = torch.randn(T, B, 3, dtype=F64, device=device, requires_grad=True)
    hx = torch.randn(4, B, 7, dtype=F64, device=device, requires_grad=True)
    lengths = torch.tensor([11, 0, 4, 1, 7])
    out, h_n = model(x, hx, t0=t0, lengths=lengths)
    expected, expected_hn = oracle(model, x, hx, t0, lengths)
    assert out.shape == (T, B, 14) and h_n.shape == (4, B, 7)
    assert_close(out, expected, what="output")
    assert_close(h_n, expected_hn, what="h_n")
    assert torch.all(out[4:, 2] == 0), "padding rows of the output are zero"

    go, gh = torch.randn_like(out), torch.randn_like(h_n)
    inputs = [x, hx] + list(model.parameters())
    got = torch.autograd.grad((out, h_n), inputs, (go, gh))
    want = torch.autograd.grad((expected, expected_hn), inputs, (go, gh))
    names = ["input", "hx"] + [n for n, _ in model.named_parameters()]
    for name, a, b in zip(names, got, want):
        assert_close(a, b, what=f"grad {name}")
        assert_nontrivial(b, name)


@pytest.mark.parametrize("device", DEVICES)
def test_equals_bidirectional_nn_rnn_when_all_periods_are_one(device):
    torch.manual_seed(1)
    rnn = nn.RNN(4, 6, num_layers=2, bidirectional=True, batch_first=True, dtype=F64, device=device)
    model = cwrnn_ext.ClockworkRNN(4, 6, periods=[1, 1], num_layers=2, bidirectional=True,
                                   batch_first=True, dtype=F64, device=device)
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in rnn.named_parameters()]
    model.load_state_dict(rnn.state_dict())
    x = torch.randn(3, 8, 4, dtype=F64, device=device)
    hx = torch.randn(4, 3, 6, dtype=F64, device=device)
    expected, expected_hn = rnn(x, hx)
    got, got_hn = model(x, hx)
    assert_close(got, expected, what="output")
    assert_close(got_hn, expected_hn, what="h_n")
    go, gh = torch.randn_like(got), torch.randn_like(got_hn)
    for (name, _), a, b in zip(rnn.named_parameters(),
                               torch.autograd.grad((got, got_hn), list(model.parameters()), (go, gh)),
                               torch.autograd.grad((expected, expected_hn), list(rnn.parameters()), (go, gh))):
        assert_close(a, b, what=f"grad {name}")


@pytest.mark.parametrize("device", DEVICES)
def test_packed_sequence_matches_bidirectional_nn_rnn(device):
    torch.manual_seed(2)
    rnn = nn.RNN(4, 6, bidirectional=True, dtype=F64, device=device)
    model = cwrnn_ext.ClockworkRNN(4, 6, periods=[1, 1, 1], bidirectional=True, dtype=F64, device=device)
    model.load_state_dict(rnn.state_dict())
    x = torch.randn(7, 4, 4, dtype=F64, device=device)
    packed = pack_padded_sequence(x, torch.tensor([3, 7, 1, 5]), enforce_sorted=False)
    expected, expected_hn = rnn(packed)
    got, got_hn = model(packed)
    assert isinstance(got, PackedSequence)
    assert torch.equal(got.batch_sizes, expected.batch_sizes)
    assert_close(got.data, expected.data, what="packed data")
    assert_close(got_hn, expected_hn, what="h_n")


def test_packed_equals_padded_with_lengths():
    model = randomize(cwrnn_ext.ClockworkRNN(4, 6, periods=[1, 2, 4], bidirectional=True, dtype=F64), seed=5)
    x = torch.randn(7, 4, 4, dtype=F64)
    lengths = torch.tensor([3, 7, 1, 5])
    out_p, hn_p = model(pack_padded_sequence(x, lengths, enforce_sorted=False), t0=2)
    out, h_n = model(x, t0=2, lengths=lengths)
    assert_close(pad_packed_sequence(out_p)[0], out, what="output")
    assert_close(hn_p, h_n, what="h_n")


def test_reverse_direction_clock_starts_on_last_valid_step():
    """With periods [1, 2] and t0 = 0 the slow module of the reverse direction ticks on the last
    valid step, the third from last, ...: so it holds between them, counted from the end."""
    model = randomize(cwrnn_ext.ClockworkRNN(2, 2, periods=[1, 2], bidirectional=True, dtype=F64), seed=7)
    x = torch.randn(6, 1, 2, dtype=F64)
    out, _ = model(x, lengths=torch.tensor([5]))
    slow_reverse = out[:5, 0, 3]  # reverse direction, slow unit, in input time
    # Reverse clock 0, 1, 2, 3, 4 at input steps 4, 3, 2, 1, 0: ticks at steps 4, 2, 0.
    assert slow_reverse[3] == slow_reverse[4] and slow_reverse[1] == slow_reverse[2]
    assert slow_reverse[2] != slow_reverse[3] and slow_reverse[0] != slow_reverse[1]


def test_unbatched_batch_first_and_dropout():
    kw = dict(periods=[1, 3], num_layers=2, bidirectional=True, dtype=F64)
    model = randomize(cwrnn_ext.ClockworkRNN(3, 5, **kw), seed=8)
    x = torch.randn(9, 3, dtype=F64)
    hx = torch.randn(4, 5, dtype=F64)
    out, h_n = model(x, hx, t0=1)
    assert out.shape == (9, 10) and h_n.shape == (4, 5)
    out_b, h_n_b = model(x[:, None], hx[:, None], t0=1)
    assert torch.equal(out, out_b[:, 0]) and torch.equal(h_n, h_n_b[:, 0])

    batch_first = cwrnn_ext.ClockworkRNN(3, 5, batch_first=True, **kw)
    batch_first.load_state_dict(model.state_dict())
    xb = torch.randn(2, 9, 3, dtype=F64)
    assert torch.equal(batch_first(xb)[0], model(xb.transpose(0, 1))[0].transpose(0, 1))

    dropped = cwrnn_ext.ClockworkRNN(3, 5, dropout=0.5, **kw)
    dropped.load_state_dict(model.state_dict())
    assert torch.equal(dropped.eval()(x)[0], model(x)[0])
    assert not torch.equal(dropped.train()(x)[0], model(x)[0])


def test_hx_shape_is_checked():
    model = cwrnn_ext.ClockworkRNN(3, 5, periods=[1, 2], num_layers=2, bidirectional=True)
    with pytest.raises(ValueError, match=r"hx must have shape \(4, 2, 5\) \(num_layers \* 2"):
        model(torch.randn(4, 2, 3), torch.zeros(2, 2, 5))


@pytest.mark.parametrize("T,B", [(0, 3), (6, 0)])
def test_empty(T, B):
    model = cwrnn_ext.ClockworkRNN(3, 4, periods=[1, 2], bidirectional=True)
    out, h_n = model(torch.randn(T, B, 3))
    assert out.shape == (T, B, 8) and h_n.shape == (2, B, 4)
