"""Clocks right to the last int64 value (docs/contract.md, Time and t0).

Every path (reference, module-major and time-major CPU schedules, the step op, its ATen composite
that CUDA runs, Stream) is held to an oracle that shares no code with the library: a float64 loop
whose clocks are Python ints, which never overflow. Periods and clocks sit near 2**62 and
2**63 - 1, where a sum of two residues passes 2**63 - 1. Clocks that would pass 2**63 - 1 are
refused with an error naming the clock argument.
"""
import numpy as np
import pytest
import torch

import cwrnn_ext
from cwrnn_ext import ops, reference
from helpers import assert_close

F64 = torch.float64
INT64_MAX = 2 ** 63 - 1
# Periods from 1 to 2**63 - 1: power-of-two and odd, and four above 2**62.
PERIODS = [1, 2, 3, 2 ** 62 - 1, 2 ** 62, 2 ** 63 - 10, 2 ** 63 - 3, INT64_MAX]
SIZES = [2, 1, 2, 1, 2, 1, 2, 1]
I, H, B = 3, sum(SIZES), 3
# (t0, T): windows in which the slow modules tick (2**62 - 1 at 2**63 - 2, 2**63 - 10 at its own
# value, INT64_MAX at the very last clock), around 2**62, and at the last clock alone.
WINDOWS = [(INT64_MAX - 11, 12), (2 ** 62 - 5, 12), (INT64_MAX, 1), (2 ** 63 - 13, 5)]
WINDOW_IDS = ["last-12", "around-2^62", "last-clock", "below-last"]


def problem(steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=F64)  # noqa: E731
    return dict(x=r(steps, B, I), h0=r(B, H), w_ih=r(H, I) * 0.5, w_hh=r(H, H) * 0.3, b_ih=r(H) * 0.3,
                b_hh=r(H) * 0.3)


def oracle(p, row_t0):
    """(output (T, B, H), ticks[s][b][i]): row b's clock at step s is row_t0[b] + s (Python ints)."""
    unit_period = [period for period, k in zip(PERIODS, SIZES) for _ in range(k)]
    allowed = torch.tensor([[unit_period[c] >= unit_period[r] for c in range(H)] for r in range(H)])
    w_hh = torch.where(allowed, p["w_hh"], torch.zeros((), dtype=F64))
    h, outputs, ticks = p["h0"].clone(), [], []
    for s in range(p["x"].shape[0]):
        clocks = [t0 + s for t0 in row_t0]
        ticks.append([[clock % period == 0 for period in PERIODS] for clock in clocks])
        active = torch.tensor([[clock % period == 0 for period in unit_period] for clock in clocks])
        new = torch.tanh(p["x"][s] @ p["w_ih"].T + h @ w_hh.T + p["b_ih"] + p["b_hh"])
        h = torch.where(active, new, h)
        outputs.append(h)
    return torch.stack(outputs), ticks


def assert_ticks(output, h0, expected_ticks, what):
    """Where each module ticks, read from the outputs: a held module is bitwise its previous value,
    a ticking one (random weights) changes."""
    previous = h0
    for s, step_ticks in enumerate(expected_ticks):
        for b, row_ticks in enumerate(step_ticks):
            begin = 0
            for i, (size, tick) in enumerate(zip(SIZES, row_ticks)):
                changed = not torch.equal(output[s, b, begin:begin + size], previous[b, begin:begin + size])
                assert changed == tick, f"{what}: module {i} (period {PERIODS[i]}) at step {s} row {b}: " \
                                        f"{'changed' if changed else 'held'}, expected {'tick' if tick else 'hold'}"
                begin += size
        previous = output[s]


def sequence_args(p, t0):
    return (p["x"], p["h0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], PERIODS, SIZES, t0)


def cell_of(p):
    cell = cwrnn_ext.ClockworkRNNCell(I, H, periods=PERIODS, module_sizes=SIZES, dtype=F64)
    with torch.no_grad():
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            getattr(cell, name.replace("w_", "weight_").replace("b_", "bias_")).copy_(p[name])
    return cell


def on_path(path, fn):
    """fn, run with the CPU forward forced onto `path`."""
    def run(*args):
        with ops.forced_forward_path(path):
            return fn(*args)
    return run


SEQUENCE_PATHS = {
    "reference": lambda p, t0: reference.clockwork_rnn(*sequence_args(p, t0))[0],
    "module-major": on_path("module_major", lambda p, t0: cwrnn_ext.clockwork_rnn(*sequence_args(p, t0))[0]),
    "time-major": on_path("time_major", lambda p, t0: cwrnn_ext.clockwork_rnn(*sequence_args(p, t0))[0]),
    "layer": lambda p, t0: layer_of(p)(p["x"], p["h0"][None], t0=t0)[0],
}


def layer_of(p):
    layer = cwrnn_ext.ClockworkRNN(I, H, periods=PERIODS, module_sizes=SIZES, dtype=F64)
    with torch.no_grad():
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            getattr(layer, name.replace("w_", "weight_").replace("b_", "bias_") + "_l0").copy_(p[name])
    return layer


@pytest.mark.parametrize("t0,steps", WINDOWS, ids=WINDOW_IDS)
@pytest.mark.parametrize("path", list(SEQUENCE_PATHS))
def test_sequence_ticks_match_python_int_oracle(path, t0, steps):
    p = problem(steps, seed=steps)
    expected, ticks = oracle(p, [t0] * B)
    with torch.no_grad():
        got = SEQUENCE_PATHS[path](p, t0)
    assert_close(got, expected, what=f"{path} t0={t0}")
    assert_ticks(got, p["h0"], ticks, f"{path} t0={t0}")


def run_steps(p, row_t0, mode, op=None):
    """Step by step, through the cell, or through `op` (an op of the step schema) with the (t,
    clocks) the cell would give it. int: one clock for the batch; per-row: clocks as a tensor;
    split: the raw op (`op`, or the step op) with t and clocks adding up to each row's clock (t
    the smallest clock)."""
    cell = cell_of(p)
    h, outputs = p["h0"], []
    for s in range(p["x"].shape[0]):
        clocks = [t0 + s for t0 in row_t0]
        if mode == "int":
            assert len(set(clocks)) == 1
            t, offsets = clocks[0], None
        elif mode == "per-row":
            t, offsets = 0, torch.tensor(clocks)
        else:
            t = min(clocks)
            offsets = torch.tensor([c - t for c in clocks])
        if op is None and mode != "split":
            h = cell(p["x"][s], h, t=t if offsets is None else offsets)
        else:
            h = (op or torch.ops.cwrnn_ext.step)(p["x"][s], h, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"],
                                                 PERIODS, SIZES, t, offsets, "tanh")
        outputs.append(h)
    return torch.stack(outputs)


@pytest.mark.parametrize("generic", [False, True], ids=["cpu-kernel", "aten-composite"])
@pytest.mark.parametrize("mode", ["int", "per-row", "split"])
@pytest.mark.parametrize("t0,steps", WINDOWS, ids=WINDOW_IDS)
def test_step_op_ticks_match_python_int_oracle(t0, steps, mode, generic):
    op = torch.ops.cwrnn_ext._generic_step if generic else None  # the composite: what the CUDA build runs
    p = problem(steps, seed=steps + 1)
    # Rows of one batch at different clocks (none past 2**63 - 1), except for the int mode.
    row_t0 = [t0] * B if mode == "int" else [t0 - 7 * b for b in range(B)]
    expected, ticks = oracle(p, row_t0)
    with torch.no_grad():
        got = run_steps(p, row_t0, mode, op)
    assert_close(got, expected, what=f"{mode} t0={row_t0}")
    assert_ticks(got, p["h0"], ticks, f"{mode} t0={row_t0}")


# ---------------------------------------------------------------------------------------------
# Clocks past 2**63 - 1
# ---------------------------------------------------------------------------------------------

def test_sequence_past_the_last_clock_is_refused():
    """The issue's case: 4 steps from 2**63 - 2 would run at 2**63 + 1."""
    model = cwrnn_ext.ClockworkRNN(2, 4, periods=[1, INT64_MAX], dtype=F64)
    x = torch.randn(4, 1, 2, dtype=F64)
    for t0 in (INT64_MAX - 2, INT64_MAX):
        with pytest.raises(ValueError, match=r"\bt0\b.*2\*\*63 - 1"):
            model(x, t0=t0)
    model(x, t0=INT64_MAX - 3)  # the last step at the last clock: valid
    p = problem(4)
    for fn in (on_path("module_major", cwrnn_ext.clockwork_rnn), on_path("time_major", cwrnn_ext.clockwork_rnn),
               reference.clockwork_rnn):
        with pytest.raises(ValueError, match=r"\bt0\b.*2\*\*63 - 1"):
            fn(*sequence_args(p, INT64_MAX - 2))
    bidirectional = cwrnn_ext.ClockworkRNN(2, 4, bidirectional=True, periods=[1, INT64_MAX], dtype=F64)
    with pytest.raises(ValueError, match=r"\bt0\b"):
        bidirectional(x, t0=INT64_MAX - 1)


def test_raw_forward_op_refuses_clocks_past_the_last(forward_path):
    p = problem(4)
    args = (p["x"], p["h0"], p["w_ih"], p["w_hh"], p["b_ih"] + p["b_hh"], PERIODS, SIZES)
    with pytest.raises(RuntimeError, match=r"t0.*2\^63 - 1"):
        torch.ops.cwrnn_ext.forward(*args, INT64_MAX - 2, "tanh", None)
    output, _ = torch.ops.cwrnn_ext.forward(*args, INT64_MAX - 3, "tanh", None)
    assert_close(output, oracle(p, [INT64_MAX - 3] * B)[0], what=forward_path)


def step_op(t, clocks, seed=0, op=None):
    """The step op (or `op`, of its schema) at clock t + clocks on one step of a problem."""
    p = problem(1, seed=seed)
    return p, (op or torch.ops.cwrnn_ext.step)(p["x"][0], p["h0"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], PERIODS, SIZES, t, clocks, "tanh")


def test_step_op_refuses_t_plus_clocks_past_the_last_on_cpu():
    with pytest.raises(RuntimeError, match=r"t \+ clocks.*row 1.*2\^63 - 1"):
        step_op(INT64_MAX - 2, torch.tensor([0, 3, 1]))
    step_op(INT64_MAX - 3, torch.tensor([0, 3, 1]))  # every row at or below the last clock


def test_step_composite_takes_clocks_past_the_last_exactly():
    """The ATen composite (CUDA's step) cannot read the clocks back without stalling the GPU, so it
    does not refuse them: it compares residues, which is exact for any t + clocks. The issue's
    clock 2**63 + 1: the period-(2**63 - 1) module holds there, and ticks at 2**63 - 1."""
    t = INT64_MAX - 1
    clocks = [3, 0, INT64_MAX]  # row clocks 2**63 + 2, 2**63 - 2, 2**64 - 3
    p, got = step_op(t, torch.tensor(clocks), op=torch.ops.cwrnn_ext._generic_step)
    expected, ticks = oracle(dict(p, x=p["x"][:1]), [t + c for c in clocks])
    assert_close(got, expected[0], what="composite past the last clock")
    assert_ticks(got[None], p["h0"], ticks, "composite past the last clock")


# ---------------------------------------------------------------------------------------------
# Stream
# ---------------------------------------------------------------------------------------------

def test_stream_refuses_to_step_past_the_last_clock():
    p = problem(3, seed=4)
    cell = cell_of(p)
    stream = cwrnn_ext.Stream(cell, p["h0"], t=INT64_MAX - 2)
    expected, _ = oracle(p, [INT64_MAX - 2] * B)
    with torch.no_grad():
        assert_close(stream.step(p["x"][0]), expected[0], what="step at 2**63 - 3")
        assert_close(stream.step(p["x"][1]), expected[1], what="step at 2**63 - 2")
        assert int(stream.t[0]) == INT64_MAX
        for call in (lambda: stream.step(p["x"][2]), lambda: stream.chunk(p["x"][2:])):
            with pytest.raises(ValueError, match=r"^t: the stream's clock is 9223372036854775807; 1 more"):
                call()
    assert int(stream.t[0]) == INT64_MAX  # nothing moved
    stream.reset()
    stream.step(p["x"][2])  # clock 0 again


def test_stream_chunk_and_row_clocks_near_the_last_clock():
    p = problem(3, seed=5)
    layer = layer_of(p)
    with torch.no_grad():
        stream = cwrnn_ext.Stream(layer, p["h0"][None], t=INT64_MAX - 3)
        assert_close(stream.chunk(p["x"]), oracle(p, [INT64_MAX - 3] * B)[0], what="chunk to 2**63 - 2")
        with pytest.raises(ValueError, match=r"\bt\b.*2\*\*63 - 1"):
            cwrnn_ext.Stream(layer, t=INT64_MAX - 2).chunk(p["x"])  # would leave t at 2**63
        # Rows at different clocks: the largest decides.
        rows = cwrnn_ext.Stream(layer, p["h0"][None], t=torch.tensor([5, INT64_MAX - 1, 0]))
        expected, _ = oracle(p, [5, INT64_MAX - 1, 0])
        assert_close(rows.step(p["x"][0]), expected[0], what="row clocks up to 2**63 - 2")
        with pytest.raises(ValueError, match=r"\bt\b.*in some row"):
            rows.step(p["x"][1])
        rows.reset([1])
        assert rows.t.tolist() == [6, 0, 1]
        rows.step(p["x"][1])


def test_stream_reset_rows_forms():
    layer = cwrnn_ext.ClockworkRNN(I, H, periods=PERIODS, module_sizes=SIZES, dtype=F64)
    x = torch.randn(4, I, dtype=F64)
    for rows, reset in [(1, [1]), (-1, [3]), ([0, 2], [0, 2]), ((np.int64(3),), [3]), (np.array([0, 1]), [0, 1]),
                        (torch.tensor([2]), [2]), (torch.tensor(0), [0]), (slice(1, 3), [1, 2]),
                        (torch.tensor([True, False, False, True]), [0, 3])]:
        stream = cwrnn_ext.Stream(layer, t=torch.tensor([4, 5, 6, 7]))
        stream.step(x)
        stream.reset(rows)
        assert stream.t.tolist() == [0 if b in reset else 5 + b for b in range(4)], rows
        zero = (stream.h[0] == 0).all(dim=1).tolist()
        assert zero == [b in reset for b in range(4)], rows


@pytest.mark.parametrize("rows,error,match", [
    (4, ValueError, r"rows: row 4 is out of range for the stream's batch of 4"),
    (-5, ValueError, r"rows: row -5 is out of range"),
    ([0, 9], ValueError, r"rows: row 9"),
    (torch.tensor([1, 4]), ValueError, r"rows: row 4"),
    (1.0, TypeError, r"rows must be an int, got float 1\.0"),
    ([0, 1.5], TypeError, r"rows\[1\] must be an int, got float 1\.5"),
    (torch.tensor([0.0]), TypeError, r"rows must be row indices"),
    (np.array([1.0]), TypeError, r"rows must be row indices"),
    (torch.tensor([True, False]), ValueError, r"rows as a bool tensor must have shape \(batch,\) = \(4,\)"),
    (torch.tensor([[0, 1]]), ValueError, r"rows as an index tensor"),
    ("0", TypeError, r"rows must be an int"),
], ids=["int", "negative", "list", "tensor", "float", "list-float", "float-tensor", "numpy-float", "bool-shape",
        "2-d", "str"])
def test_stream_reset_bad_rows_names_rows(rows, error, match):
    layer = cwrnn_ext.ClockworkRNN(I, H, periods=PERIODS, module_sizes=SIZES, dtype=F64)
    stream = cwrnn_ext.Stream(layer)
    stream.step(torch.randn(4, I, dtype=F64))
    with pytest.raises(error, match=match):
        stream.reset(rows)
    assert stream.t.tolist() == [1, 1, 1, 1]  # a refused reset changes nothing
