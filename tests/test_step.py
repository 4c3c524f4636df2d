"""The one-step path (the `step` op behind ClockworkRNNCell) against the reference: every clock
value modulo the periods' least common multiple, per-row clocks, held rows, gradients, and the
time-major sequence op that short sequences take."""
import math
from functools import reduce

import pytest
import torch

import cwrnn_ext
from cwrnn_ext import ops, reference
from helpers import (DEVICES, FAMILY, tolerance, assert_close, assert_nontrivial, make_problem,
                     random_lengths, unit_periods)

F32, F64 = torch.float32, torch.float64

# (periods, module_sizes, input_size): harmonic, non-harmonic with unequal sizes, repeated periods,
# one module (nn.RNNCell), a large LCM, and sizes that exercise the kernel's vector tails and tiles.
LAYOUTS = {
    "harmonic": ([1, 2, 4, 8], [4, 4, 4, 4], 5),
    "nonharmonic-unequal": ([1, 3, 5], [3, 5, 2], 4),
    "repeated": ([2, 2, 6], [3, 2, 3], 3),
    "single": ([1], [6], 2),
    "coprime": ([3, 7], [5, 4], 6),
    "wide": ([1, 2, 4], [29, 21, 20], 19),
}


def lcm(values):
    return reduce(lambda a, b: a * b // math.gcd(a, b), values)


def make_cell(layout, dtype, nonlinearity="tanh", bias=True, device="cpu", seed=0):
    periods, sizes, inputs = LAYOUTS[layout]
    cell = cwrnn_ext.ClockworkRNNCell(inputs, sum(sizes), periods=periods, module_sizes=sizes, bias=bias,
                                      nonlinearity=nonlinearity, dtype=dtype, device=device)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in cell.named_parameters():
            scale = 1.0 / math.sqrt(cell.hidden_size) if name == "weight_hh" else 0.5
            # Disallowed blocks get random values too: the kernel must never read them.
            p.copy_(torch.randn(p.shape, generator=gen, dtype=F64).to(dtype) * scale)
    return cell


def cell_args(cell):
    bias = (cell.bias_ih, cell.bias_hh) if cell.bias else (None, None)
    return (cell.weight_ih, cell.weight_hh, *bias, cell.periods, cell.module_sizes)


def reference_step(cell, x, hx, t):
    """The reference's one-step sequence at clock t (an int), h_n (B, H)."""
    if hx is None:
        hx = x.new_zeros(x.shape[0], cell.hidden_size)
    return reference.clockwork_rnn(x[None], hx, *cell_args(cell), t, cell.nonlinearity)[1]


def random_state(B, cell, dtype, seed, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, cell.input_size, generator=gen, dtype=F64).to(dtype).to(device)
    hx = torch.randn(B, cell.hidden_size, generator=gen, dtype=F64).to(dtype).to(device)
    return x, hx


# ---------------------------------------------------------------------------------------------
# Values: every clock value, both nonlinearities, with and without bias and hx
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_clock_value_matches_reference(layout, nonlinearity, dtype, device):
    cell = make_cell(layout, dtype, nonlinearity, device=device, seed=1)
    cycle = lcm(cell.periods)
    for B in (1, 3, 6):  # a lone row (the matrix-vector kernel), tiles of 4 rows and remainders
        x, hx = random_state(B, cell, dtype, seed=B, device=device)
        for t in list(range(cycle)) + [cycle * 10**15 + 1, 2**63 - 1]:
            with torch.no_grad():
                assert_close(cell(x, hx, t=t), reference_step(cell, x, hx, t % cycle), what=f"B={B} t={t}")


@pytest.mark.parametrize("bias_ih,bias_hh", [(False, False), (True, False), (False, True)])
def test_without_some_bias_and_hx(bias_ih, bias_hh):
    cell = make_cell("nonharmonic-unequal", F64, seed=2)
    x, hx = random_state(4, cell, F64, seed=3)
    b_ih = cell.bias_ih if bias_ih else None
    b_hh = cell.bias_hh if bias_hh else None
    for t in range(lcm(cell.periods)):
        for h in (hx, None):
            got = torch.ops.cwrnn_ext.step(x, h if h is not None else torch.zeros_like(hx), cell.weight_ih,
                                           cell.weight_hh, b_ih, b_hh, cell.periods, cell.module_sizes, t,
                                           None, "tanh")
            expected = reference.clockwork_rnn(x[None], h, cell.weight_ih, cell.weight_hh, b_ih, b_hh,
                                               cell.periods, cell.module_sizes, t)[1]
            assert_close(got, expected, what=f"t={t} hx={'given' if h is not None else 'None'}")
    nobias = make_cell("harmonic", F64, bias=False, seed=3)
    x, hx = random_state(2, nobias, F64, seed=4)
    for t in range(8):
        assert_close(nobias(x, hx, t=t), reference_step(nobias, x, hx, t), what=f"bias=False t={t}")
        assert_close(nobias(x, None, t=t), reference_step(nobias, x, None, t), what=f"hx=None t={t}")


def test_unbatched_and_noncontiguous():
    cell = make_cell("wide", F64, seed=4)
    x, hx = random_state(5, cell, F64, seed=5)
    for t in range(4):
        assert_close(cell(x[2], hx[2], t=t), reference_step(cell, x[2:3], hx[2:3], t)[0], what="unbatched")
        assert_close(cell(x[2], hx[2], t=torch.tensor(t)), reference_step(cell, x[2:3], hx[2:3], t)[0],
                     what="unbatched, 0-d tensor t")
    # Strided rows and columns, transposed weights.
    xs = torch.randn(cell.input_size, 10, dtype=F64).t()[::2]
    hs = torch.randn(5, 2 * cell.hidden_size, dtype=F64)[:, ::2]
    w_ih = cell.weight_ih.detach().t().contiguous().t()
    w_hh = cell.weight_hh.detach().t().contiguous().t()
    for t in range(4):
        got = torch.ops.cwrnn_ext.step(xs, hs, w_ih, w_hh, cell.bias_ih, cell.bias_hh, cell.periods,
                                       cell.module_sizes, t, None, "tanh")
        assert_close(got, reference_step(cell, xs.contiguous(), hs.contiguous(), t), what=f"strided t={t}")


def composite_step(cell, x, hx, t):
    """The step op's ATen composite, the one the CUDA build runs, through its CPU test op; t an int
    or a tensor of clocks, one per row."""
    t, clocks = (0, t) if isinstance(t, torch.Tensor) else (t, None)
    return torch.ops.cwrnn_ext._generic_step(x, hx, *cell_args(cell), t, clocks, cell.nonlinearity)


def check_large_steps(threads, run_step=lambda cell, x, hx, t: cell(x, hx, t=t)):
    """Steps large enough for the kernel to split across threads, against the reference."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        periods, sizes = [1, 2, 4, 8, 16], [60, 50, 50, 50, 46]
        cell = cwrnn_ext.ClockworkRNNCell(24, 256, periods=periods, module_sizes=sizes, dtype=F64)
        for B in (1, 9):
            x, hx = random_state(B, cell, F64, seed=B)
            clocks = torch.arange(B) * 3 + 1
            for t in range(8):
                assert_close(run_step(cell, x, hx, t), reference_step(cell, x, hx, t), what=f"B={B} t={t}")
                got = run_step(cell, x, hx, clocks + t)
                for b in range(B):
                    assert_close(got[b], reference_step(cell, x[b:b + 1], hx[b:b + 1], t + int(clocks[b]))[0],
                                 what=f"per-row B={B} t={t} row {b}")
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("threads", [1, 2])
def test_large_steps_threads(threads):
    check_large_steps(threads)


@pytest.mark.parametrize("threads", [1, 2])
def test_large_steps_aten_composite(threads):
    """The same steps through the ATen composite that the CUDA build runs, checked here on the CPU."""
    check_large_steps(threads, composite_step)


def test_empty_batch_and_no_input():
    cell = make_cell("harmonic", F64)
    assert cell(torch.zeros(0, cell.input_size, dtype=F64), t=3).shape == (0, cell.hidden_size)
    assert cell(torch.zeros(0, cell.input_size, dtype=F64), t=torch.zeros(0, dtype=torch.int64)).shape == (0, 16)
    generator = cwrnn_ext.ClockworkRNNCell(0, 7, periods=[1, 2, 3], dtype=F64)
    hx = torch.randn(2, 7, dtype=F64)
    for t in range(6):
        assert_close(generator(torch.zeros(2, 0, dtype=F64), hx, t=t),
                     reference_step(generator, torch.zeros(2, 0, dtype=F64), hx, t), what=f"I=0 t={t}")


# ---------------------------------------------------------------------------------------------
# Per-row clocks and holds
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("layout", ["harmonic", "nonharmonic-unequal", "coprime", "wide"])
def test_per_row_clocks_equal_rows_alone(layout, dtype, device):
    cell = make_cell(layout, dtype, device=device, seed=5)
    B = 9
    x, hx = random_state(B, cell, dtype, seed=6, device=device)
    gen = torch.Generator().manual_seed(7)
    for trial in range(6):
        clocks = torch.randint(0, 3 * lcm(cell.periods), (B,), generator=gen)
        if trial == 5:
            clocks[0] = 2**62  # huge clocks are taken modulo the periods, never overflow
        got = cell(x, hx, t=clocks.to(device))
        for b in range(B):
            alone = cell(x[b:b + 1], hx[b:b + 1], t=int(clocks[b]))
            assert_close(got[b:b + 1], alone, what=f"row {b} at t={int(clocks[b])}")
            expected = reference_step(cell, x[b:b + 1], hx[b:b + 1], int(clocks[b]) % lcm(cell.periods))
            assert_close(got[b:b + 1], expected, what=f"row {b} vs reference")


def test_op_clock_is_t_plus_row_clock():
    cell = make_cell("coprime", F64)
    x, hx = random_state(4, cell, F64, seed=8)
    clocks = torch.tensor([0, 1, 5, 2**62 - 1])  # with t = 2**62: up to 2**63 - 1, the last clock
    for t in (0, 3, 2**62):
        got = torch.ops.cwrnn_ext.step(x, hx, *cell_args(cell), t, clocks, "tanh")
        for b in range(4):
            clock = (t + int(clocks[b])) % 21
            assert_close(got[b:b + 1], reference_step(cell, x[b:b + 1], hx[b:b + 1], clock), what=f"t={t} row {b}")


@pytest.mark.parametrize("layout", [name for name in LAYOUTS if name != "single"])  # period 1 never holds
def test_held_rows_bitwise_unchanged(layout):
    """A held unit is hx's value, bit for bit: no arithmetic touches it (not even + 0 or a cast)."""
    cell = make_cell(layout, F32, seed=9)
    B = 5
    hx = torch.tensor([-0.0, 1e-40, 3.4e38, -1.5, float("inf"), float("nan")])[torch.randint(0, 6, (B, cell.hidden_size))]
    x = torch.randn(B, cell.input_size)
    period_of_unit = unit_periods(cell.periods, cell.module_sizes)
    for clocks in (torch.tensor([1] * B), torch.arange(B) + 1, torch.tensor([3, 7, 11, 13, 29])):
        with torch.no_grad():
            got = cell(x, hx, t=clocks)
        held = clocks[:, None] % period_of_unit[None, :] != 0
        assert held.any()
        assert torch.equal(got.view(torch.int32)[held], hx.view(torch.int32)[held])


# ---------------------------------------------------------------------------------------------
# Gradients: a Python loop of cells trains as the sequence does
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("per_row", [False, True], ids=["one-clock", "per-row-clocks"])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("layout", ["nonharmonic-unequal", "repeated", "wide"])
def test_loop_of_cells_gradients_match_reference(layout, dtype, per_row):
    cell = make_cell(layout, dtype, seed=10)
    T, B = 9, 4
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(T, B, cell.input_size, generator=gen, dtype=F64).to(dtype).requires_grad_()
    hx = torch.randn(B, cell.hidden_size, generator=gen, dtype=F64).to(dtype).requires_grad_()
    start = torch.tensor([0, 2, 5, 1]) if per_row else torch.zeros(B, dtype=torch.int64)
    h, outputs = hx, []
    for s in range(T):
        h = cell(x[s], h, t=start + s if per_row else s)
        outputs.append(h)
    loss_weights = torch.randn(T, B, cell.hidden_size, generator=gen, dtype=F64).to(dtype)
    tensors = [x, hx] + list(cell.parameters())
    got = torch.autograd.grad((torch.stack(outputs) * loss_weights).sum(), tensors)
    # The reference, one sequence per row (each from its own start clock).
    total = 0
    for b in range(B):
        out, _ = reference.clockwork_rnn(x[:, b:b + 1], hx[b:b + 1], *cell_args(cell), int(start[b]),
                                         cell.nonlinearity)
        total = total + (out * loss_weights[:, b:b + 1]).sum()
    expected = torch.autograd.grad(total, tensors)
    names = ["input", "hx"] + [n for n, _ in cell.named_parameters()]
    for name, g, e in zip(names, got, expected):
        assert_nontrivial(e, name)
        assert_close(g, e, tol=tolerance(dtype, max(T * B, cell.hidden_size)), what=f"grad {name}")


def test_gradients_only_where_asked():
    cell = make_cell("harmonic", F64, seed=12)
    x, hx = random_state(3, cell, F64, seed=13)
    hx.requires_grad_()
    (g_hx,) = torch.autograd.grad(cell(x, hx, t=2).sum(), [hx])
    expected = torch.autograd.grad(reference_step(cell, x, hx, 2).sum(), [hx])[0]
    assert_close(g_hx, expected, what="grad hx")
    frozen = make_cell("harmonic", F64, seed=12, bias=False).requires_grad_(False)
    with torch.no_grad():
        assert not frozen(x, hx, t=1).requires_grad
    assert frozen(x, hx, t=1).requires_grad  # hx still does


def test_parametrized_weights_are_used():
    """A parametrization replaces a parameter by a computed tensor; the cell must step with it."""
    cell = make_cell("harmonic", F64, seed=18)
    x, hx = random_state(3, cell, F64, seed=19)

    class Double(torch.nn.Module):
        def forward(self, w):
            return 2 * w

    torch.nn.utils.parametrize.register_parametrization(cell, "weight_hh", Double())
    for t in range(4):
        assert_close(cell(x, hx, t=t), reference_step(cell, x, hx, t), what=f"t={t}")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("per_row", [False, True], ids=["one-clock", "per-row-clocks"])
def test_gradcheck(per_row, nonlinearity):
    periods, sizes = [1, 2, 3], [2, 3, 2]
    for seed in range(100):
        gen = torch.Generator().manual_seed(seed)
        r = lambda *s: torch.randn(*s, generator=gen, dtype=F64)  # noqa: E731
        x, hx, w_ih, w_hh, b_ih, b_hh = r(4, 3), r(4, 7), r(7, 3), r(7, 7) / 2, r(7), r(7)
        pre = x @ w_ih.t() + hx @ w_hh.t() + b_ih + b_hh  # (a superset of the used columns)
        if nonlinearity == "tanh" or pre.abs().min() > 1e-3:  # relu: away from its kink
            break
    clocks = torch.tensor([0, 1, 3, 4]) if per_row else None
    tensors = [t.requires_grad_() for t in (x, hx, w_ih, w_hh, b_ih, b_hh)]

    def f(*a):
        return torch.ops.cwrnn_ext.step(*a[:4], a[4], a[5], periods, sizes, 2, clocks, nonlinearity)

    assert torch.autograd.gradcheck(f, tensors, eps=1e-6, atol=1e-7, rtol=1e-5)
    assert torch.autograd.gradcheck(lambda x, h, wi, wh: f(x, h, wi, wh, None, None), tensors[:4],
                                    eps=1e-6, atol=1e-7, rtol=1e-5)


def test_double_backward_is_refused():
    cell = make_cell("harmonic", F64)
    x, hx = random_state(2, cell, F64, seed=14)
    (g,) = torch.autograd.grad(cell(x, hx, t=0).pow(2).sum(), cell.weight_ih, create_graph=True)
    with pytest.raises(RuntimeError, match=r"double backward.*not supported"):
        g.pow(2).sum().backward()


def step_op_arguments(per_row, bias=True, requires_grad=True, B=3):
    cell = make_cell("nonharmonic-unequal", F64, seed=15)
    x, hx = random_state(B, cell, F64, seed=16)
    args = [t.detach().clone().requires_grad_(requires_grad) for t in (x, hx, cell.weight_ih, cell.weight_hh)]
    biases = [cell.bias_ih.detach().clone().requires_grad_(requires_grad), None] if bias else [None, None]
    clocks = torch.tensor([0, 1, 5][:B], dtype=torch.int64) if per_row else None
    return (*args, *biases, cell.periods, cell.module_sizes, 3, clocks, "tanh")


@pytest.mark.parametrize("requires_grad", [False, True], ids=["nograd", "grad"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("per_row", [False, True], ids=["one-clock", "per-row-clocks"])
def test_opcheck_step(per_row, bias, requires_grad):
    torch.library.opcheck(torch.ops.cwrnn_ext.step, step_op_arguments(per_row, bias, requires_grad))


def test_opcheck_step_empty_batch():
    torch.library.opcheck(torch.ops.cwrnn_ext.step, step_op_arguments(True, B=0))


@pytest.mark.parametrize("mask", [(True,) * 5, (False, True, False, True, False)], ids=["all", "some"])
@pytest.mark.parametrize("per_row", [False, True], ids=["one-clock", "per-row-clocks"])
def test_opcheck_step_backward(per_row, mask):
    args = step_op_arguments(per_row, requires_grad=False)
    output = torch.ops.cwrnn_ext.step(*args)
    grad = torch.randn_like(output)
    x, hx, w_ih, w_hh, _, _, periods, sizes, t, clocks, nonlinearity = args
    torch.library.opcheck(torch.ops.cwrnn_ext.step_backward,
                          (grad, x, hx, w_ih, w_hh, output, periods, sizes, t, clocks, nonlinearity, list(mask)))
    grads = torch.ops.cwrnn_ext.step_backward(grad, x, hx, w_ih, w_hh, output, periods, sizes, t, clocks,
                                              nonlinearity, list(mask))
    assert [g is not None for g in grads] == list(mask)


@pytest.mark.slow
def test_compile_loop_of_steps():
    """torch.compile(fullgraph=True) of a loop of cell steps: forward and gradients as in eager."""
    cell = make_cell("nonharmonic-unequal", F32, seed=17)
    x = torch.randn(6, 3, cell.input_size)
    hx = torch.randn(3, cell.hidden_size)
    clocks = torch.tensor([0, 4, 7])

    def run(x, hx, clocks):
        h, total = hx, 0
        for s in range(x.shape[0]):
            h = cell(x[s], h, t=s)
            h = cell(x[s], h, t=clocks + s)  # per-row clocks too
            total = total + h.square().sum()
        return total, h

    torch._dynamo.reset()
    compiled = torch.compile(run, fullgraph=True)
    expected = run(x, hx, clocks)
    got = compiled(x, hx, clocks)
    assert_close(got[1], expected[1], what="compiled h")
    params = list(cell.parameters())
    g_expected = torch.autograd.grad(expected[0], params)
    g_got = torch.autograd.grad(got[0], params)
    for (name, _), a, b in zip(cell.named_parameters(), g_got, g_expected):
        assert_close(a, b, what=f"compiled grad {name}")


# ---------------------------------------------------------------------------------------------
# The time-major sequence op (short sequences)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", [
    # T, B, I, H, periods, sizes, t0, nonlinearity, lengths
    (1, 3, 4, 8, [1, 2, 4], None, 0, "tanh", False),
    (7, 5, 3, 10, [1, 3, 5], [3, 5, 2], 2, "relu", True),
    (12, 1, 0, 9, [2, 2, 6], [3, 3, 3], 5, "tanh", False),
    (9, 6, 19, 70, [1, 2, 4], [29, 21, 20], 1, "tanh", True),
    (0, 3, 4, 8, [1, 2], None, 0, "tanh", False),
    (5, 0, 4, 8, [1, 2], None, 0, "tanh", False),
    (6, 40, 8, 128, [1, 2, 4, 8], None, 3, "tanh", True),  # large enough to use both threads
], ids=["T1", "nonharmonic-lengths", "noinput", "wide-lengths", "T0", "B0", "threads"])
def test_each_forward_path_matches_reference(case, dtype, threads, forward_path):
    """The forward op on either path (forced), against the reference: values, and the gradients
    of the module-major backward that serves both."""
    T, B, I, H, periods, sizes, t0, nonlinearity, use_lengths = case
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        problem = make_problem(T, B, I, H, periods, sizes, dtype=dtype, seed=T + B)
        lengths = random_lengths(T, B, seed=T) if use_lengths else None
        args = problem.args(t0, nonlinearity, lengths)
        output, h_n = cwrnn_ext.clockwork_rnn(*args)
        assert ops.last_forward_path() in FAMILY[forward_path]
        expected, expected_h_n = reference.clockwork_rnn(*args)
        assert_close(output, expected, what="output")
        assert_close(h_n, expected_h_n, what="h_n")
        if T == 0 or B == 0:
            return
        named = problem.tensors()
        go, gh = torch.randn_like(expected), torch.randn_like(expected_h_n)
        got = torch.autograd.grad((output, h_n), [t for _, t in named], (go, gh), allow_unused=True,
                                  materialize_grads=True)
        want = torch.autograd.grad((expected, expected_h_n), [t for _, t in named], (go, gh),
                                   allow_unused=True, materialize_grads=True)
        for (name, _), a, b in zip(named, got, want):
            assert_close(a, b, what=f"grad {name}")
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_module_same_either_path(bidirectional):
    """Both forward paths give a module the same values and gradients."""
    model = cwrnn_ext.ClockworkRNN(4, 10, periods=[1, 3, 5], module_sizes=[3, 5, 2], num_layers=2,
                                   bidirectional=bidirectional, dtype=F64)
    x = torch.randn(8, 3, 4, dtype=F64, requires_grad=True)
    lengths = torch.tensor([8, 5, 1])
    results = []
    for path in ("module_major", "time_major"):
        with ops.forced_forward_path(path):
            output, h_n = model(x, t0=2, lengths=lengths)
            assert ops.last_forward_path() == path
        grads = torch.autograd.grad(output.sum() + h_n.square().sum(), [x] + list(model.parameters()))
        results.append((output, h_n, grads))
    (o0, h0, g0), (o1, h1, g1) = results
    assert_close(o1, o0, what="output")
    assert_close(h1, h0, what="h_n")
    for a, b in zip(g1, g0):
        assert_close(a, b, what="grad")


# The rule's constants were measured on one machine (csrc/cpu/policy.h); what must hold anywhere is
# its shape: a sequence that runs time-major still does when shorter, narrower or a smaller batch;
# a single step always does; a dtype without the step kernel never does; the pipeline is only for
# a batch too small to split.
SIZES = [1, 2, 3, 8, 32, 64, 128, 256, 1024, 4096]


def test_path_rule_is_monotone_and_one_step_is_time_major():
    for steps in SIZES:
        for batch in SIZES:
            for hidden in SIZES:
                path = ops.forward_path(steps, batch, hidden, 8)
                assert ops.forward_path(steps, batch, hidden, 8, torch.bfloat16) != "time_major"
                if steps == 1:
                    assert path == "time_major", (steps, batch, hidden)
                if path == "pipelined":  # for a batch too small to split: a large one is split
                    assert ops.forward_path(steps, batch * 32, hidden, 8) != "pipelined"
                if path == "time_major":  # every smaller shape too
                    for smaller in ((max(1, steps // 2), batch, hidden), (steps, max(1, batch // 2), hidden),
                                    (steps, batch, max(1, hidden // 2))):
                        assert ops.forward_path(*smaller, 8) == "time_major", (steps, batch, hidden)


@pytest.mark.parametrize("steps,batch,hidden", [(1, 32, 1024), (8, 1, 64), (64, 4, 256), (512, 32, 512),
                                                (1024, 1, 64)])
def test_forward_follows_the_rule(steps, batch, hidden):
    """What ran is what the rule says (the pipeline only where the call got two threads)."""
    model = cwrnn_ext.ClockworkRNN(16, hidden, num_modules=8)
    with torch.no_grad():
        model(torch.randn(steps, batch, 16))
    expected = ops.forward_path(steps, batch, hidden, 8)
    if expected == "pipelined" and cwrnn_ext.ops._C.last_call_threads() < 2:
        expected = "module_major"
    assert ops.last_forward_path() == expected


def test_time_major_only_with_its_kernel():
    """A short sequence in a dtype without the step kernel (bfloat16 on the CPU) runs module-major,
    even when time-major is forced."""
    model = cwrnn_ext.ClockworkRNN(4, 16, num_modules=4, dtype=torch.bfloat16)
    with torch.no_grad(), ops.forced_forward_path("time_major"):
        model(torch.randn(3, 2, 4, dtype=torch.bfloat16))
        assert ops.last_forward_path() == "module_major"


def test_forced_path_refuses_unknown_names():
    with pytest.raises(ValueError, match="time_major"):
        with ops.forced_forward_path("fast"):
            pass
    assert ops.forward_path(1, 1, 8, 2) == "time_major"  # nothing was left forced


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

NAMES_T = r"(^|[^\w])t([^\w]|$)"


@pytest.mark.parametrize("t,error", [
    (-1, ValueError),
    (True, TypeError),
    (0.5, TypeError),
    (torch.tensor([1, -2, 3]), (ValueError, RuntimeError)),
    (torch.tensor([1.0, 2.0, 3.0]), TypeError),
    (torch.tensor([True, False, True]), TypeError),
    (torch.tensor(True), TypeError),
    (torch.tensor(-1), ValueError),
    (torch.tensor([1, 2]), ValueError),
    (torch.tensor([[1, 2, 3]]), ValueError),
    (torch.tensor([1, 2, 3], device="meta"), ValueError),
], ids=["negative", "bool", "float", "tensor-negative", "tensor-float", "tensor-bool", "0d-bool",
        "0d-negative", "tensor-short", "tensor-2d", "tensor-device"])
def test_bad_clock_names_t(t, error):
    cell = make_cell("harmonic", F32)
    with pytest.raises(error, match=NAMES_T):
        cell(torch.randn(3, cell.input_size), t=t)


def test_bad_clock_unbatched_and_fallback():
    cell = make_cell("harmonic", F32)
    with pytest.raises(ValueError, match=NAMES_T):
        cell(torch.randn(cell.input_size), t=torch.tensor([1]))
    # A dtype without a CPU kernel goes through the reference, which must refuse as well.
    half = make_cell("harmonic", torch.bfloat16)
    with pytest.raises((ValueError, TypeError), match=NAMES_T):
        half(torch.randn(3, half.input_size, dtype=torch.bfloat16), t=torch.tensor([1, -2, 3]))


def test_sequence_refuses_row_clocks():
    model = cwrnn_ext.ClockworkRNN(3, 6, periods=[1, 2])
    with pytest.raises(TypeError, match=r"t0.*per-row clocks.*Stream"):
        model(torch.randn(5, 3, 3), t0=torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match=r"t0"):
        cwrnn_ext.clockwork_rnn(torch.randn(5, 3, 3), None, model.weight_ih_l0, model.weight_hh_l0, None,
                                None, [1, 2], None, torch.tensor([0, 1, 2]))


def raw_step(**overrides):
    cell = make_cell("harmonic", F32)
    args = dict(input=torch.randn(3, cell.input_size), hx=torch.randn(3, 16), weight_ih=cell.weight_ih.detach(),
                weight_hh=cell.weight_hh.detach(), bias_ih=None, bias_hh=None, periods=cell.periods,
                module_sizes=cell.module_sizes, t=0, clocks=None, nonlinearity="tanh")
    args.update(overrides)
    return torch.ops.cwrnn_ext.step(*args.values())


@pytest.mark.parametrize("overrides,match", [
    (dict(clocks=torch.tensor([1, 2])), r"\bt\b.*shape"),
    (dict(clocks=torch.tensor([1, 2, 3], dtype=torch.int32)), r"\bt\b.*int64"),
    (dict(clocks=torch.tensor([1, -2, 3])), r"\bt\b.*>= 0"),
    (dict(t=-1), r"\bt\b.*>= 0"),
    (dict(hx=torch.randn(3, 15)), r"hx"),
    (dict(input=torch.randn(3, 4, 1)), r"input"),
    (dict(weight_ih=torch.randn(16, 6)), r"weight_ih"),
    (dict(bias_hh=torch.randn(15)), r"bias_hh"),
    (dict(hx=torch.randn(3, 16, dtype=F64)), r"hx.*dtype"),
    (dict(module_sizes=[4, 4, 4, 5]), r"module_sizes|hidden_size"),
    (dict(periods=[1, 2, 0, 8]), r"periods"),
    (dict(periods=[4, 2, 1, 8]), r"periods"),
    (dict(nonlinearity="sigmoid"), r"nonlinearity"),
], ids=["clocks-shape", "clocks-int32", "clocks-negative", "t-negative", "hx-shape", "input-3d",
        "weight_ih-shape", "bias_hh-shape", "hx-dtype", "sizes-sum", "period-zero", "periods-unsorted", "nonlinearity"])
def test_raw_step_op_refuses(overrides, match):
    """The op itself, bypassing every Python check: a RuntimeError naming the argument, never a crash."""
    with pytest.raises(RuntimeError, match=match):
        raw_step(**overrides)
