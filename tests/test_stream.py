"""cwrnn_ext.Stream: a sequence fed step by step or in uneven chunks equals one call, with the
clock carried (per row) and the state saved and restored as tensors."""
import io
import math
import random

import pytest
import torch

import cwrnn_ext
from cwrnn_ext import reference
from helpers import DEVICES, assert_close, assert_nontrivial

F64 = torch.float64


def randomize(module, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            scale = 0.5 / math.sqrt(module.hidden_size) if "weight_hh" in name else 0.4
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64).to(p.dtype) * scale)
    return module


def random_splits(steps, rng):
    """Cut points of [0, steps) into pieces of random sizes (1 .. 9); a piece of size 1 is fed
    with step() or chunk() at random, others with chunk()."""
    cuts, start = [], 0
    while start < steps:
        size = min(rng.randint(1, 9), steps - start)
        cuts.append((start, start + size, size == 1 and rng.random() < 0.5))
        start += size
    return cuts


def feed(stream, x, cuts):
    """Feeds time-major x through the stream; returns the outputs concatenated in time."""
    outputs = []
    for start, stop, as_step in cuts:
        if as_step:
            outputs.append(stream.step(x[start]).unsqueeze(0))
        else:
            outputs.append(stream.chunk(x[start:stop]))
    return torch.cat(outputs)


def make_model(kind, device, layers=2, seed=0, **kw):
    periods, sizes = [1, 3, 5], [3, 4, 2]
    if kind == "cell":
        return randomize(cwrnn_ext.ClockworkRNNCell(4, 9, periods=periods, module_sizes=sizes, dtype=F64,
                                                    device=device, **kw), seed)
    return randomize(cwrnn_ext.ClockworkRNN(4, 9, periods=periods, module_sizes=sizes, num_layers=layers,
                                            dtype=F64, device=device, **kw), seed)


def whole(model, x, hx=None, t0=0):
    """(output, final state) of one call on the whole time-major x."""
    if isinstance(model, cwrnn_ext.ClockworkRNN):
        return model(x, hx, t0=t0)
    bias = (model.bias_ih, model.bias_hh) if model.bias else (None, None)
    output, h_n = reference.clockwork_rnn(x, hx, model.weight_ih, model.weight_hh, *bias, model.periods,
                                          model.module_sizes, t0, model.nonlinearity)
    return output, h_n


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["cell", "layer"])
@pytest.mark.parametrize("seed", range(4))
def test_random_splits_equal_one_call(seed, kind, device):
    rng = random.Random(seed)
    model = make_model(kind, device, seed=seed)
    T, B = 31, 3
    x = torch.randn(T, B, 4, dtype=F64, device=device, requires_grad=True)
    t0 = rng.randint(0, 20)
    expected, expected_h = whole(model, x, t0=t0)
    stream = cwrnn_ext.Stream(model, t=t0)
    got = feed(stream, x, random_splits(T, rng))
    assert_close(got, expected, what="output")
    assert_close(stream.h, expected_h, what="final state")
    assert torch.equal(stream.t.cpu(), torch.full((B,), t0 + T))
    # Gradients through the stream equal those of the one call.
    go = torch.randn_like(expected)
    tensors = [x] + list(model.parameters())
    for a, b in zip(torch.autograd.grad((got * go).sum(), tensors), torch.autograd.grad((expected * go).sum(), tensors)):
        assert_nontrivial(b)
        assert_close(a, b, what="gradient")


def test_batch_first_unbatched_and_hx():
    model = make_model("layer", "cpu", batch_first=True, seed=5)
    x = torch.randn(3, 17, 4, dtype=F64)  # (B, T, I)
    hx = torch.randn(2, 3, 9, dtype=F64)
    expected, expected_h = model(x, hx, t0=4)
    stream = cwrnn_ext.Stream(model, hx=hx, t=4)
    got = torch.cat([stream.chunk(x[:, :5]), stream.step(x[:, 5]).unsqueeze(1), stream.chunk(x[:, 6:])], dim=1)
    assert_close(got, expected, what="batch_first output")
    assert_close(stream.h, expected_h, what="batch_first h")
    # Unbatched: (T, I) chunks and (I,) steps, state (num_layers, H), clock 0-d.
    single = make_model("layer", "cpu", seed=6)
    u = torch.randn(11, 4, dtype=F64)
    expected, expected_h = single(u, t0=2)
    stream = cwrnn_ext.Stream(single, t=2)
    got = torch.cat([stream.step(u[0])[None], stream.chunk(u[1:7]), stream.step(u[7])[None], stream.chunk(u[8:])])
    assert_close(got, expected, what="unbatched output")
    assert_close(stream.h, expected_h, what="unbatched h")
    assert stream.t.shape == () and int(stream.t) == 13
    cell = make_model("cell", "cpu", seed=7)
    stream = cwrnn_ext.Stream(cell)
    got = torch.cat([stream.chunk(u[:3]), stream.step(u[3])[None], stream.chunk(u[4:])])
    assert_close(got, whole(cell, u[:, None])[0][:, 0], what="unbatched cell")


@pytest.mark.parametrize("kind", ["cell", "layer"])
def test_rows_with_their_own_clocks(kind):
    """Streams that started at different times share a batch: each row equals its stream alone."""
    rng = random.Random(8)
    model = make_model(kind, "cpu", seed=8)
    starts = torch.tensor([0, 3, 7, 12])
    x = torch.randn(19, 4, 4, dtype=F64)
    stream = cwrnn_ext.Stream(model, t=starts)
    got = feed(stream, x, random_splits(19, rng))
    for b in range(4):
        alone, alone_h = whole(model, x[:, b:b + 1], t0=int(starts[b]))
        assert_close(got[:, b:b + 1], alone, what=f"row {b}")
        assert_close(stream.h[..., b:b + 1, :], alone_h, what=f"row {b} state")
    assert torch.equal(stream.t, starts + 19)


def test_reset_rows_starts_new_streams():
    model = make_model("layer", "cpu", seed=9)
    x = torch.randn(14, 3, 4, dtype=F64)
    stream = cwrnn_ext.Stream(model)
    stream.chunk(x[:6])
    stream.reset(torch.tensor([False, True, False]))  # row 1: a new user from here on
    assert torch.equal(stream.t, torch.tensor([6, 0, 6]))
    got = stream.chunk(x[6:])
    continued, _ = model(x[:, [0, 2]])
    assert_close(got[:, [0, 2]], continued[6:], what="rows that went on")
    fresh, _ = model(x[6:, 1:2])
    assert_close(got[:, 1:2], fresh, what="the restarted row")
    stream.reset()
    assert stream.h is None and stream.t is None
    assert stream.step(torch.randn(5, 4, dtype=F64)).shape == (5, 9)  # another batch size after reset()


def test_state_saves_and_restores():
    model = make_model("layer", "cpu", seed=10)
    x = torch.randn(20, 2, 4, dtype=F64)
    expected, _ = model(x, t0=1)
    stream = cwrnn_ext.Stream(model, t=torch.tensor([1, 1]))
    first = stream.chunk(x[:9])
    buffer = io.BytesIO()
    torch.save(stream.state_dict(), buffer)
    buffer.seek(0)
    restored = cwrnn_ext.Stream(model)
    restored.load_state_dict(torch.load(buffer))
    assert all(isinstance(v, torch.Tensor) for v in restored.state_dict().values())
    second = restored.chunk(x[9:])
    assert_close(torch.cat([first, second]), expected, what="output across a save and restore")


def test_truncated_backpropagation():
    model = make_model("cell", "cpu", seed=11)
    x = torch.randn(8, 2, 4, dtype=F64)
    stream = cwrnn_ext.Stream(model)
    stream.chunk(x[:4]).sum().backward()
    stream.detach()
    model.zero_grad()
    stream.chunk(x[4:]).sum().backward()  # would fail (graph freed) without detach()
    assert model.weight_hh.grad is not None


def test_empty_chunk_and_bad_use():
    model = make_model("layer", "cpu", seed=12)
    stream = cwrnn_ext.Stream(model)
    assert stream.chunk(torch.zeros(0, 2, 4, dtype=F64)).shape == (0, 2, 9)
    assert torch.equal(stream.t, torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="batch"):
        stream.step(torch.randn(3, 4, dtype=F64))  # the stream carries a batch of 2
    with pytest.raises(ValueError, match="input"):
        stream.step(torch.randn(2, 5, dtype=F64))
    with pytest.raises(TypeError, match="rnn"):
        cwrnn_ext.Stream(torch.nn.RNN(4, 9))
    with pytest.raises(ValueError, match="bidirectional"):
        cwrnn_ext.Stream(cwrnn_ext.ClockworkRNN(4, 9, bidirectional=True))
    with pytest.raises(ValueError, match=r"\bt\b"):
        cwrnn_ext.Stream(model, t=-1)
    with pytest.raises(ValueError, match=r"\bt\b"):
        cwrnn_ext.Stream(model, t=torch.tensor([0, -1])).step(torch.randn(2, 4, dtype=F64))
    with pytest.raises(ValueError, match=r"\bh\b"):
        cwrnn_ext.Stream(model, hx=torch.zeros(1, 2, 9, dtype=F64)).step(torch.randn(2, 4, dtype=F64))
    with pytest.raises(ValueError, match="keys"):
        stream.load_state_dict({"h": None})
