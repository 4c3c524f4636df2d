"""Semantics of the Clockwork RNN (docs/contract.md, Semantics) and of the nn.Module API
(docs/contract.md, Python API)."""
import copy
import math

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import cwrnn_ext
from cwrnn_ext import reference
from helpers import (DEVICES, allowed_mask, assert_close, assert_nontrivial, make_problem,
                     random_lengths, run, unit_periods)

# Every test runs on each CPU forward path in turn: the rule would pick time-major for most of these shapes.
pytestmark = pytest.mark.usefixtures("forward_path")

F64 = torch.float64
IMPLEMENTATIONS = {"kernel": cwrnn_ext.clockwork_rnn, "reference": reference.clockwork_rnn}


def module_slices(sizes):
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [slice(s, s + k) for s, k in zip(starts, sizes)]


def randomize(model, seed=0, scale=0.5):
    """Random parameters (disallowed blocks re-zeroed), weight_hh ~ N(0, (scale/sqrt(H))^2)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = scale / math.sqrt(model.hidden_size) if "weight_hh" in name else 0.4
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64).to(p.dtype) * std)
            if "weight_hh" in name:
                p.masked_fill_(~allowed_mask(model.periods, model.module_sizes).to(p.device), 0)
    return model


# ---------------------------------------------------------------------------------------------
# Relation to nn.RNN
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch_first", [False, True], ids=["timemajor", "batchfirst"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_all_periods_one_is_nn_rnn(nonlinearity, batch_first, device):
    torch.manual_seed(1)
    rnn = nn.RNN(4, 6, num_layers=2, nonlinearity=nonlinearity, batch_first=batch_first,
                 dtype=F64, device=device)
    model = cwrnn_ext.ClockworkRNN(4, 6, periods=[1, 1, 1], module_sizes=[1, 3, 2], num_layers=2,
                                   nonlinearity=nonlinearity, batch_first=batch_first, dtype=F64,
                                   device=device)
    model.load_state_dict(rnn.state_dict())
    x = torch.randn(3, 9, 4, dtype=F64, device=device)  # (B, T, I) or (T, B, I)
    batch = x.shape[0] if batch_first else x.shape[1]
    hx = torch.randn(2, batch, 6, dtype=F64, device=device)
    expected, expected_hn = rnn(x, hx)
    got, got_hn = model(x, hx)
    assert_close(got, expected, what="output")
    assert_close(got_hn, expected_hn, what="h_n")
    # And the gradients of every parameter.
    go, gh = torch.randn_like(got), torch.randn_like(got_hn)
    grads_rnn = torch.autograd.grad((expected, expected_hn), list(rnn.parameters()), (go, gh))
    grads_cw = torch.autograd.grad((got, got_hn), list(model.parameters()), (go, gh))
    for (name, _), a, b in zip(rnn.named_parameters(), grads_cw, grads_rnn):
        assert_close(a, b, what=f"grad {name}")
        assert_nontrivial(b, name)


# ---------------------------------------------------------------------------------------------
# The clock: connectivity, holds, structural zeros
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("periods,sizes", [([1, 2, 4, 8], [2, 1, 2, 3]), ([2, 2, 6], [1, 3, 2])],
                         ids=["harmonic", "repeated"])
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_fast_modules_never_influence_slower_ones(impl, periods, sizes, device):
    fn = IMPLEMENTATIONS[impl]
    T, B, I = 13, 3, 3
    base = make_problem(T, B, I, sum(sizes), periods, sizes, device=device, seed=5, requires_grad=False)
    lengths = random_lengths(T, B, 5, device)
    out0, hn0 = fn(*base.args(t0=1, lengths=lengths))
    slices = module_slices(sizes)
    for m, rows in enumerate(slices):
        slower = unit_periods(periods, sizes) > periods[m]
        if not slower.any():
            continue
        for what in ("hx", "weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            p = copy.deepcopy(base)
            tensor = getattr(p, what)
            if what == "hx":
                tensor[:, rows] += 1.0
            else:
                tensor[rows] += 0.7  # the rows of module m (for weight_hh, disallowed entries too)
            out, hn = fn(*p.args(t0=1, lengths=lengths))
            assert torch.equal(out[..., slower.to(device)], out0[..., slower.to(device)]), (m, what)
            assert torch.equal(hn[..., slower.to(device)], hn0[..., slower.to(device)]), (m, what)
            assert not torch.equal(out[..., rows], out0[..., rows]), f"perturbing {what} of module {m} did nothing"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("t0", [0, 1, 4])
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_inactive_modules_hold_exactly(impl, t0, device):
    periods, sizes = [1, 3, 5], [1, 5, 2]
    T = 17
    problem = make_problem(T, 4, 3, 8, periods, sizes, device=device, seed=6, requires_grad=False,
                           dtype=torch.float32)
    out, hn = IMPLEMENTATIONS[impl](*problem.args(t0=t0))
    hx = problem.hx
    per_unit = unit_periods(periods, sizes).tolist()
    changed = 0
    for unit, period in enumerate(per_unit):
        previous = hx[:, unit]
        ticked = False
        for s in range(T):
            if (t0 + s) % period != 0:
                assert torch.equal(out[s, :, unit], previous), (unit, s)
                if not ticked:
                    assert torch.equal(out[s, :, unit], hx[:, unit]), (unit, s)
            else:
                ticked = True
                changed += int(not torch.equal(out[s, :, unit], previous))
            previous = out[s, :, unit]
    assert changed > 0
    assert torch.equal(hn, out[-1])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_disallowed_blocks_are_never_read(impl, device):
    periods, sizes = [1, 3, 5], [1, 5, 2]
    fn = IMPLEMENTATIONS[impl]
    mask = allowed_mask(periods, sizes).to(device)
    clean = make_problem(8, 3, 3, 8, periods, sizes, device=device, seed=7)
    with torch.no_grad():
        clean.weight_hh.masked_fill_(~mask, 0)
    dirty = make_problem(8, 3, 3, 8, periods, sizes, device=device, seed=7)
    with torch.no_grad():
        dirty.weight_hh.masked_fill_(~mask, float("nan"))
    lengths = random_lengths(8, 3, 7, device)
    out_c, hn_c, grads_c = run(fn, clean, t0=2, lengths=lengths)
    out_d, hn_d, grads_d = run(fn, dirty, t0=2, lengths=lengths)
    assert torch.equal(out_d, out_c) and torch.equal(hn_d, hn_c)
    for name in grads_c:
        assert torch.equal(grads_d[name], grads_c[name]), name
    assert torch.equal(grads_d["weight_hh"][~mask], torch.zeros_like(grads_d["weight_hh"][~mask]))
    assert_nontrivial(grads_d["weight_hh"][mask], "allowed weight_hh grad")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_disallowed_blocks_get_exactly_zero_gradient(impl, device):
    for periods, sizes in (([1, 2, 4, 8], [3, 1, 2, 2]), ([2, 2, 6], [1, 4, 2]), ([1, 1, 3, 3], [2, 1, 1, 2])):
        problem = make_problem(11, 3, 2, sum(sizes), periods, sizes, device=device, seed=8)
        _, _, grads = run(IMPLEMENTATIONS[impl], problem, t0=1)
        mask = allowed_mask(periods, sizes).to(device)
        assert (~mask).any()
        assert torch.equal(grads["weight_hh"][~mask], torch.zeros_like(grads["weight_hh"][~mask]))
        assert (grads["weight_hh"][mask] != 0).float().mean() > 0.5


# ---------------------------------------------------------------------------------------------
# Time: chunks, t0, the cell
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("t0", [0, 2])
@pytest.mark.parametrize("periods,sizes", [([1, 3, 5], [1, 5, 2]), ([2, 2, 6], [3, 2, 3])],
                         ids=["nonharmonic", "repeated"])
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_chunks_equal_one_run(impl, periods, sizes, t0, device):
    fn = IMPLEMENTATIONS[impl]
    T = 23
    problem = make_problem(T, 3, 4, 8, periods, sizes, device=device, seed=9)
    whole, hn_whole = fn(*problem.args(t0=t0))
    pieces, h, start = [], problem.hx, 0
    for n in (5, 7, 1, 10):
        chunk = problem.input[start:start + n]
        out, h = fn(chunk, h, problem.weight_ih, problem.weight_hh, problem.bias_ih, problem.bias_hh,
                    periods, sizes, t0 + start, "tanh", None)
        pieces.append(out)
        start += n
    assert start == T
    chunked = torch.cat(pieces)
    assert_close(chunked, whole, what="output")
    assert_close(h, hn_whole, what="h_n")
    # The gradients flow through the chunk boundaries identically too.
    tensors = [t for _, t in problem.tensors()]
    go, gh = torch.randn_like(whole), torch.randn_like(hn_whole)
    g_whole = torch.autograd.grad((whole, hn_whole), tensors, (go, gh))
    g_chunk = torch.autograd.grad((chunked, h), tensors, (go, gh))
    for (name, _), a, b in zip(problem.tensors(), g_chunk, g_whole):
        assert_close(a, b, what=f"grad {name}")


@pytest.mark.parametrize("device", DEVICES)
def test_chunks_equal_one_run_module(device):
    model = randomize(cwrnn_ext.ClockworkRNN(3, 9, periods=[1, 3, 7], num_layers=2, dtype=F64,
                                             device=device), seed=1)
    x = torch.randn(20, 2, 3, dtype=F64, device=device)
    hx = torch.randn(2, 2, 9, dtype=F64, device=device)
    whole, hn_whole = model(x, hx, t0=4)
    pieces, h = [], hx
    for start, stop in ((0, 6), (6, 13), (13, 20)):
        out, h = model(x[start:stop], h, t0=4 + start)
        pieces.append(out)
    assert_close(torch.cat(pieces), whole, what="output")
    assert_close(h, hn_whole, what="h_n")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("t0", [0, 3])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_cell_matches_layer(nonlinearity, t0, device):
    kw = dict(periods=[1, 2, 3, 6], module_sizes=[2, 1, 3, 1], nonlinearity=nonlinearity, dtype=F64, device=device)
    layer = randomize(cwrnn_ext.ClockworkRNN(4, 7, **kw), seed=2)
    cell = cwrnn_ext.ClockworkRNNCell(4, 7, **kw)
    cell.load_state_dict({name[:-3]: p for name, p in layer.state_dict().items()})
    x = torch.randn(10, 3, 4, dtype=F64, device=device)
    hx = torch.randn(3, 7, dtype=F64, device=device)
    output, h_n = layer(x, hx[None], t0=t0)
    h = hx
    for s in range(10):
        h = cell(x[s], h, t=t0 + s)
        assert_close(h, output[s], what=f"step {s}")
    assert_close(h, h_n[0], what="h_n")
    # Unbatched cell, and hx=None meaning zeros.
    assert_close(cell(x[0, 1], hx[1], t=t0), cell(x[0, 1:2], hx[1:2], t=t0)[0], what="unbatched cell")
    assert_close(cell(x[0], None, t=t0), cell(x[0], torch.zeros_like(hx), t=t0), what="cell hx=None")


# ---------------------------------------------------------------------------------------------
# Training: structural zeros survive optimisers with weight decay
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["Adam", "AdamW"])
def test_disallowed_blocks_stay_zero_under_training(optimizer):
    model = cwrnn_ext.ClockworkRNN(3, 10, periods=[1, 2, 4, 8], num_layers=2, dtype=F64)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = getattr(torch.optim, optimizer)(model.parameters(), lr=0.05, weight_decay=0.1)
    x = torch.randn(16, 4, 3, dtype=F64)
    target = torch.randn(16, 4, 10, dtype=F64)
    mask = allowed_mask(model.periods, model.module_sizes)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        output, h_n = model(x, t0=1)
        loss = (output - target).pow(2).mean() + h_n.pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for layer in range(2):
        w = getattr(model, f"weight_hh_l{layer}").detach()
        assert torch.equal(w[~mask], torch.zeros_like(w[~mask])), f"layer {layer}"
        assert not torch.equal(w[mask], before[f"weight_hh_l{layer}"][mask])


# ---------------------------------------------------------------------------------------------
# torch.compile, determinism
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_torch_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    model = randomize(cwrnn_ext.ClockworkRNN(3, 7, periods=[1, 2, 3], module_sizes=[2, 3, 2],
                                             num_layers=2, dtype=F64), seed=3)
    x = torch.randn(6, 3, 3, dtype=F64)
    hx = torch.randn(2, 3, 7, dtype=F64)
    lengths = torch.tensor([6, 0, 4])
    compiled = torch.compile(model, fullgraph=True)

    def forward_backward(m):
        model.zero_grad()
        xg, hg = x.clone().requires_grad_(), hx.clone().requires_grad_()
        out, h_n = m(xg, hg, t0=2, lengths=lengths)
        ((out * torch.arange(out.numel(), dtype=F64).view_as(out).sin()).sum() + h_n.pow(2).sum()).backward()
        return out.detach(), h_n.detach(), xg.grad, hg.grad, [p.grad.clone() for p in model.parameters()]

    eager = forward_backward(model)
    from torch._dynamo.utils import counters
    counters.clear()
    comp = forward_backward(compiled)
    assert counters["stats"]["unique_graphs"] >= 1  # it really was captured
    names = ["output", "h_n", "grad input", "grad hx"]
    for name, a, b in zip(names, comp[:4], eager[:4]):
        assert_close(a, b, what=name)
    for (name, _), a, b in zip(model.named_parameters(), comp[4], eager[4]):
        assert_close(a, b, what=f"grad {name}")
        assert_nontrivial(b, name)


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic(device, threads_for_any_work):
    """The promise (README, "Determinism"): bitwise the same results for a fixed thread count;
    between thread counts they differ at rounding level only (as torch's own GEMMs do). Every
    call may use every thread (threads_for_any_work), on each forward path (forward_path)."""
    model = cwrnn_ext.ClockworkRNN(5, 24, periods=[1, 2, 4, 8, 16], num_layers=2, dtype=F64, device=device)
    x = torch.randn(40, 16, 5, dtype=F64, device=device)
    lengths = random_lengths(40, 16, 1, device)

    def once(threads):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            model.zero_grad()
            xg = x.clone().requires_grad_()
            out, h_n = model(xg, t0=3, lengths=lengths)
            if device == "cpu":
                assert cwrnn_ext.ops._C.last_call_threads() == threads
            (out.sin().sum() + h_n.cos().sum()).backward()
        finally:
            torch.set_num_threads(previous)
        return [out.detach(), h_n.detach(), xg.grad] + [p.grad.clone() for p in model.parameters()]

    runs = {threads: (once(threads), once(threads)) for threads in (1, 2, 3)}
    for threads, (first, second) in runs.items():
        for a, b in zip(first, second):
            assert torch.equal(a, b), f"two runs on {threads} thread(s) differ"
    for threads in (2, 3):
        for a, b in zip(runs[threads][0], runs[1][0]):
            assert_close(a, b, what=f"{threads} threads vs 1")


# ---------------------------------------------------------------------------------------------
# lengths and PackedSequence
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_lengths_semantics(impl, device):
    fn = IMPLEMENTATIONS[impl]
    T, B = 12, 5
    problem = make_problem(T, B, 3, 8, [1, 3, 5], [1, 5, 2], device=device, seed=10)
    lengths = torch.tensor([12, 0, 5, 1, 9], device=device)
    output, h_n, grads = run(fn, problem, t0=1, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        assert torch.equal(output[n:, b], torch.zeros_like(output[n:, b])), b
        x_b = problem.input[:n, b:b + 1]
        if n == 0:
            assert torch.equal(h_n[b], problem.hx[b])
            continue
        alone, alone_hn = fn(x_b, problem.hx[b:b + 1], problem.weight_ih, problem.weight_hh,
                             problem.bias_ih, problem.bias_hh, problem.periods, problem.module_sizes,
                             1, "tanh", None)
        assert_close(output[:n, b], alone[:, 0], what=f"output of sequence {b}")
        assert_close(h_n[b], alone_hn[0], what=f"h_n of sequence {b}")
    # The padding is never read: its gradient is zero and changing it changes nothing.
    valid = torch.arange(T, device=device)[:, None] < lengths[None, :]
    assert torch.equal(grads["input"][~valid], torch.zeros_like(grads["input"][~valid]))
    with torch.no_grad():
        problem.input[~valid] = 1e3
    output2, h_n2 = fn(*problem.args(t0=1, lengths=lengths))
    assert torch.equal(output2, output) and torch.equal(h_n2, h_n)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("enforce_sorted", [False, True], ids=["unsorted", "sorted"])
def test_packed_sequence(enforce_sorted, device):
    model = randomize(cwrnn_ext.ClockworkRNN(4, 6, periods=[1, 2, 3], num_layers=2, dtype=F64,
                                             device=device), seed=4)
    lengths = torch.tensor([7, 5, 3, 1]) if enforce_sorted else torch.tensor([3, 7, 1, 5])
    x = torch.randn(7, 4, 4, dtype=F64, device=device)
    hx = torch.randn(2, 4, 6, dtype=F64, device=device)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
    out_p, hn_p = model(packed, hx, t0=1)
    assert isinstance(out_p, PackedSequence)
    assert torch.equal(out_p.batch_sizes, packed.batch_sizes)
    for attr in ("sorted_indices", "unsorted_indices"):
        a, b = getattr(out_p, attr), getattr(packed, attr)
        assert (a is None and b is None) or torch.equal(a, b), attr
    out_padded, hn_padded = model(x, hx, t0=1, lengths=lengths)
    unpacked, unpacked_lengths = pad_packed_sequence(out_p)
    assert torch.equal(unpacked_lengths, lengths)
    assert_close(unpacked, out_padded, what="packed output")
    assert_close(hn_p, hn_padded, what="packed h_n")
    out_p.data.sum().backward()
    assert_nontrivial(model.weight_hh_l0.grad, "grad through PackedSequence")


@pytest.mark.parametrize("device", DEVICES)
def test_packed_sequence_matches_nn_rnn(device):
    torch.manual_seed(2)
    rnn = nn.RNN(4, 6, num_layers=2, dtype=F64, device=device)
    model = cwrnn_ext.ClockworkRNN(4, 6, periods=[1, 1], num_layers=2, dtype=F64, device=device)
    model.load_state_dict(rnn.state_dict())
    x = torch.randn(7, 4, 4, dtype=F64, device=device)
    hx = torch.randn(2, 4, 6, dtype=F64, device=device)
    packed = pack_padded_sequence(x, torch.tensor([3, 7, 1, 5]), enforce_sorted=False)
    expected, expected_hn = rnn(packed, hx)
    got, got_hn = model(packed, hx)
    assert torch.equal(got.batch_sizes, expected.batch_sizes)
    assert_close(got.data, expected.data, what="packed data")
    assert_close(got_hn, expected_hn, what="h_n")


# ---------------------------------------------------------------------------------------------
# Module API: shapes, layouts, parameters
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_unbatched_input(device):
    model = randomize(cwrnn_ext.ClockworkRNN(3, 5, periods=[1, 2], num_layers=2, dtype=F64, device=device))
    x = torch.randn(8, 3, dtype=F64, device=device)
    hx = torch.randn(2, 5, dtype=F64, device=device)
    out, h_n = model(x, hx, t0=1)
    assert out.shape == (8, 5) and h_n.shape == (2, 5)
    out_b, h_n_b = model(x[:, None], hx[:, None], t0=1)
    assert torch.equal(out, out_b[:, 0]) and torch.equal(h_n, h_n_b[:, 0])
    out0, h_n0 = model(x)
    assert out0.shape == (8, 5) and h_n0.shape == (2, 5)
    assert torch.equal(out0, model(x, torch.zeros_like(hx))[0])


@pytest.mark.parametrize("device", DEVICES)
def test_batch_first(device):
    kw = dict(periods=[1, 3], num_layers=2, dtype=F64, device=device)
    time_major = randomize(cwrnn_ext.ClockworkRNN(3, 5, **kw), seed=5)
    batch_first = cwrnn_ext.ClockworkRNN(3, 5, batch_first=True, **kw)
    batch_first.load_state_dict(time_major.state_dict())
    x = torch.randn(4, 9, 3, dtype=F64, device=device)  # (B, T, I)
    hx = torch.randn(2, 4, 5, dtype=F64, device=device)  # (num_layers, B, H), as nn.RNN
    lengths = torch.tensor([9, 2, 0, 5])
    out_bf, hn_bf = batch_first(x, hx, t0=2, lengths=lengths)
    out_tm, hn_tm = time_major(x.transpose(0, 1), hx, t0=2, lengths=lengths)
    assert out_bf.shape == (4, 9, 5)
    assert torch.equal(out_bf, out_tm.transpose(0, 1)) and torch.equal(hn_bf, hn_tm)


def test_multilayer_is_layers_composed():
    model = randomize(cwrnn_ext.ClockworkRNN(3, 6, periods=[1, 2, 5], module_sizes=[3, 2, 1],
                                             num_layers=3, nonlinearity="relu", dtype=F64), seed=6)
    x = torch.randn(9, 2, 3, dtype=F64)
    hx = torch.randn(3, 2, 6, dtype=F64)
    out, h_n = model(x, hx, t0=1)
    layer_in = x
    for layer in range(3):
        p = lambda n: getattr(model, f"{n}_l{layer}")  # noqa: E731
        layer_in, h = reference.clockwork_rnn(layer_in, hx[layer], p("weight_ih"), p("weight_hh"), p("bias_ih"),
                                              p("bias_hh"), [1, 2, 5], [3, 2, 1], 1, "relu")
        assert_close(h_n[layer], h, what=f"h_n layer {layer}")
    assert_close(out, layer_in, what="output")


def test_dropout_between_layers():
    model = randomize(cwrnn_ext.ClockworkRNN(3, 8, periods=[1, 2], num_layers=3, dropout=0.5, dtype=F64))
    plain = cwrnn_ext.ClockworkRNN(3, 8, periods=[1, 2], num_layers=3, dtype=F64)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(6, 4, 3, dtype=F64)
    model.eval()
    eval1, eval2 = model(x)[0], model(x)[0]
    assert torch.equal(eval1, eval2)
    assert torch.equal(eval1, plain(x)[0])
    model.train()
    torch.manual_seed(11)
    train1 = model(x)[0]
    torch.manual_seed(11)
    train1_again = model(x)[0]
    train2 = model(x)[0]
    assert torch.equal(train1, train1_again)
    assert not torch.allclose(train1, eval1)
    assert not torch.allclose(train1, train2)
    # No dropout after the last layer, so with one layer train and eval agree (and, as nn.RNN,
    # the constructor warns that the dropout does nothing).
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        single = randomize(cwrnn_ext.ClockworkRNN(3, 8, periods=[1, 2], num_layers=1, dropout=0.5, dtype=F64))
    assert torch.equal(single.train()(x)[0], single.eval()(x)[0])


@pytest.mark.parametrize("device", DEVICES)
def test_input_size_zero_module(device):
    model = randomize(cwrnn_ext.ClockworkRNN(0, 6, periods=[1, 2, 4], num_layers=2, dtype=F64, device=device))
    assert model.weight_ih_l0.shape == (6, 0) and model.weight_ih_l1.shape == (6, 6)
    x = torch.zeros(10, 2, 0, dtype=F64, device=device)
    hx = torch.randn(2, 2, 6, dtype=F64, device=device)
    out, h_n = model(x, hx)
    assert out.shape == (10, 2, 6) and h_n.shape == (2, 2, 6)
    assert out.abs().max() > 0
    (out.sum() + h_n.sum()).backward()
    assert model.weight_ih_l0.grad.shape == (6, 0)
    assert_nontrivial(model.weight_hh_l0.grad, "weight_hh_l0 grad")
    assert_nontrivial(model.bias_ih_l0.grad, "bias_ih_l0 grad")
    cell = cwrnn_ext.ClockworkRNNCell(0, 6, periods=[1, 2, 4], dtype=F64, device=device)
    assert cell(x[0], hx[0]).shape == (2, 6)


def test_default_layout():
    model = cwrnn_ext.ClockworkRNN(3, 11, num_modules=9)
    assert model.module_sizes == [2, 2, 1, 1, 1, 1, 1, 1, 1]
    assert model.periods == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    default = cwrnn_ext.ClockworkRNN(3, 11)  # g = min(8, H)
    assert default.periods == [1, 2, 4, 8, 16, 32, 64, 128]
    assert default.module_sizes == [2, 2, 2, 1, 1, 1, 1, 1]
    small = cwrnn_ext.ClockworkRNN(3, 5)
    assert small.periods == [1, 2, 4, 8, 16] and small.module_sizes == [1] * 5
    assert cwrnn_ext.ClockworkRNN(3, 1).periods == [1]
    given = cwrnn_ext.ClockworkRNN(3, 10, periods=[1, 3, 9])
    assert given.module_sizes == [4, 3, 3]
    cell = cwrnn_ext.ClockworkRNNCell(3, 11, num_modules=9)
    assert cell.module_sizes == [2, 2, 1, 1, 1, 1, 1, 1, 1] and cell.periods == model.periods
    # The functional default split is the same rule.
    x = torch.randn(5, 2, 3, dtype=F64)
    problem = make_problem(5, 2, 3, 11, [1, 2, 4], dtype=F64, requires_grad=False)
    a = cwrnn_ext.clockwork_rnn(x, None, problem.weight_ih, problem.weight_hh, None, None, [1, 2, 4])
    b = cwrnn_ext.clockwork_rnn(x, None, problem.weight_ih, problem.weight_hh, None, None, [1, 2, 4],
                                module_sizes=[4, 4, 3])
    assert torch.equal(a[0], b[0])


@pytest.mark.parametrize("bias", [True, False])
def test_parameter_names_match_nn_rnn(bias):
    model = cwrnn_ext.ClockworkRNN(3, 6, num_layers=3, bias=bias)
    rnn = nn.RNN(3, 6, num_layers=3, bias=bias)
    assert [(n, p.shape) for n, p in model.named_parameters()] == [(n, p.shape) for n, p in rnn.named_parameters()]
    cell = cwrnn_ext.ClockworkRNNCell(3, 6, bias=bias)
    rnn_cell = nn.RNNCell(3, 6, bias=bias)
    assert [(n, p.shape) for n, p in cell.named_parameters()] == [(n, p.shape) for n, p in rnn_cell.named_parameters()]
    # state_dicts are interchangeable
    model.load_state_dict(rnn.state_dict())


def test_initialisation():
    H = 32
    model = cwrnn_ext.ClockworkRNN(5, H, periods=[1, 2, 4, 8], num_layers=2)
    cell = cwrnn_ext.ClockworkRNNCell(5, H, periods=[1, 2, 4, 8])
    bound = 1 / math.sqrt(H)
    mask = allowed_mask(model.periods, model.module_sizes)
    for owner in (model, cell):
        for name, p in owner.named_parameters():
            assert p.abs().max() <= bound, name
            values = p[mask] if "weight_hh" in name else p.flatten()
            assert values.min() < -0.8 * bound and values.max() > 0.8 * bound, name  # spread, uniform-like
            assert (values != 0).all(), name
            if "weight_hh" in name:
                assert torch.equal(p[~mask], torch.zeros_like(p[~mask])), name


# ---------------------------------------------------------------------------------------------
# Empty batches and zero-length sequences
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("T,B", [(0, 3), (6, 0), (0, 0)])
def test_empty_module(T, B, device):
    model = randomize(cwrnn_ext.ClockworkRNN(4, 5, periods=[1, 2], num_layers=2, dtype=F64, device=device))
    x = torch.randn(T, B, 4, dtype=F64, device=device, requires_grad=True)
    hx = torch.randn(2, B, 5, dtype=F64, device=device, requires_grad=True)
    for lengths in (None, torch.zeros(B, dtype=torch.int64)):
        out, h_n = model(x, hx, t0=1, lengths=lengths)
        assert out.shape == (T, B, 5) and h_n.shape == (2, B, 5)
        gh = torch.randn_like(h_n)
        grads = torch.autograd.grad((out.sum() + (h_n * gh).sum(),), (x, hx) + tuple(model.parameters()),
                                    allow_unused=True, materialize_grads=True)
        assert grads[0].shape == x.shape and grads[1].shape == hx.shape
        if T == 0:
            assert torch.equal(h_n, hx.detach())  # nothing ran: the state is hx
            assert torch.equal(grads[1], gh)
    out, h_n = model(x)  # hx=None
    assert out.shape == (T, B, 5) and h_n.shape == (2, B, 5)
    if B == 0 and T > 0:
        bf = cwrnn_ext.ClockworkRNN(4, 5, periods=[1, 2], batch_first=True, dtype=F64, device=device)
        assert bf(x.transpose(0, 1))[0].shape == (0, T, 5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("T,B", [(0, 3), (6, 0)])
def test_empty_functional(T, B, device):
    problem = make_problem(T, B, 4, 5, [1, 2], device=device, seed=3)
    output, h_n, grads = run(cwrnn_ext.clockwork_rnn, problem, t0=2)
    assert output.shape == (T, B, 5) and h_n.shape == (B, 5)
    assert grads["input"].shape == (T, B, 4) and grads["hx"].shape == (B, 5)
    assert torch.equal(grads["weight_hh"], torch.zeros_like(grads["weight_hh"]))
    if T == 0:
        assert torch.equal(h_n, problem.hx.detach())
