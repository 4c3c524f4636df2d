"""The CPU schedule's own paths against the reference: input projections and held terms computed
inside the recurrences (every group of a batch row on one thread), the upstream gradient read
where it lies (absent, expanded, strided), large groups (the register-blocked micro-kernel), and
the per-thread workspace reused across calls of different shapes and from several threads."""
import pytest
import torch

import cwrnn_ext
from cwrnn_ext import reference
from helpers import assert_close, make_problem, random_lengths, run_in_threads, run_kernel, run_reference

# The threaded schedules on small problems: without this, the work threshold would run them on one
# thread (test_thread_policy.py tests the threshold itself).
# The module-major schedule's own machinery: the rule would run most of these shapes time-major.
pytestmark = pytest.mark.usefixtures("threads_for_any_work", "module_major_path")

DTYPES = [torch.float64, torch.float32]


def compare_runs(problem, dtype, **kw):
    out_k, hn_k, grads_k = run_kernel(problem, **kw)
    out_r, hn_r, grads_r = run_reference(problem, **kw)
    assert_close(out_k, out_r, dtype, "output")
    assert_close(hn_k, hn_r, dtype, "h_n")
    for name in grads_r:
        assert_close(grads_k[name], grads_r[name], dtype, f"grad {name}")


# (T, B, I, periods, module_sizes): large groups take the register-blocked micro-kernel (k >= 32
# in float32, >= 16 in float64), with its ragged column edge and 1-4-row tiles.
LARGE = [
    (37, 6, 5, [1, 2, 4, 8], [40, 33, 17, 9]),
    (20, 9, 3, [1, 3, 3, 7], [70, 16, 20, 35]),
    (1, 5, 4, [1, 2, 4], [34, 33, 32]),  # one step: every period is capped to 1
]


# k covering every combination of the micro-kernel's column blocks (C, C/2, ... down to 16 bytes,
# then single columns; C = two registers: 32 float32 / 16 float64 with AVX-512, 16 / 8 with AVX2,
# 8 / 4 on the baseline, each set tested under its own ATEN_CPU_CAPABILITY by
# test_cpu_capability.py) and every j tail of the S = 4 / 2 accumulator sets.
COLUMN_PATHS = list(range(1, 41)) + [47, 63]


@pytest.mark.parametrize("k", COLUMN_PATHS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_column_block_and_row_tile(dtype, k):
    """Against the reference at tile heights 1-4, the batch split unevenly over two threads
    whatever the runner's core count: per-thread rows 1 | 2 | 3 | 3+2 | 5+4 (tiles 4+1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for B in (1, 2, 3, 5, 9):
            problem = make_problem(7, B, 3, k + 3, [1, 2], [k, 3], dtype=dtype, seed=100 * k + B)
            compare_runs(problem, dtype, t0=1, lengths=random_lengths(7, B, k) if B > 2 else None)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("case", LARGE, ids=["harmonic", "nonharmonic", "one-step"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_large_groups(case, dtype, nonlinearity):
    T, B, I, periods, sizes = case
    problem = make_problem(T, B, I, sum(sizes), periods, sizes, dtype=dtype, seed=T + B)
    compare_runs(problem, dtype, t0=3, nonlinearity=nonlinearity, lengths=random_lengths(T, B, 4))


def loss_grads(fn, problem, loss, lengths):
    output, h_n = fn(*problem.args(t0=2, lengths=lengths))
    names = [n for n, _ in problem.tensors()]
    grads = torch.autograd.grad(loss(output, h_n), [t for _, t in problem.tensors()],
                                allow_unused=True, materialize_grads=True)
    return dict(zip(names, grads))


LOSSES = {
    "h_n-only": lambda output, h_n: h_n.square().sum(),          # grad_output is None
    "output-only": lambda output, h_n: output.cos().sum(),       # grad_h_n is None
    "output-sum": lambda output, h_n: output.sum() + h_n.sum(),  # expanded (stride 0) gradients
    "strided": lambda output, h_n: (output.transpose(0, 1)[:, ::2] * 3).sum() + h_n[:, 1:].sum(),
    # grad_output = PERMUTED itself: hidden units are its slowest-varying dimension
    "permuted": lambda output, h_n: (output * PERMUTED).sum() + (h_n * PERMUTED[-1]).sum(),
}
PERMUTED = torch.randn(40, 15, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(9)).permute(1, 2, 0)


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("use_lengths", [False, True], ids=["nolengths", "lengths"])
def test_upstream_gradients_of_any_layout(loss, use_lengths):
    problem = make_problem(15, 5, 4, 40, [1, 2, 5], [20, 12, 8], seed=3)
    lengths = random_lengths(15, 5, 3) if use_lengths else None
    got = loss_grads(cwrnn_ext.clockwork_rnn, problem, LOSSES[loss], lengths)
    expected = loss_grads(reference.clockwork_rnn, problem, LOSSES[loss], lengths)
    for name in expected:
        assert_close(got[name], expected[name], torch.float64, f"grad {name}")


def test_noncontiguous_input_and_gradients_large():
    problem = make_problem(12, 7, 6, 48, [1, 4], [32, 16], dtype=torch.float32, seed=5,
                           noncontiguous=True)
    assert not problem.input.is_contiguous()
    compare_runs(problem, torch.float32, t0=1, lengths=random_lengths(12, 7, 5))


def test_workspace_reused_across_shapes_is_bitwise_stable():
    """Calls of different sizes in turn (the workspace grows, shrinks and is reused) give the same
    bits as the first call of each size."""
    shapes = [(40, 8, 64), (9, 3, 40), (60, 16, 96), (40, 8, 64)]
    first = {}
    for round_ in range(2):
        for T, B, H in shapes:
            problem = make_problem(T, B, 5, H, [1, 2, 4, 8], dtype=torch.float32, seed=T)
            out, h_n, grads = run_kernel(problem, lengths=random_lengths(T, B, 1))
            result = [out, h_n] + [grads[n] for n in sorted(grads)]
            if (T, B, H) not in first:
                first[(T, B, H)] = result
            for a, b in zip(result, first[(T, B, H)]):
                assert torch.equal(a, b), (round_, T, B, H)


def test_threads_calling_at_once_match_serial():
    """Python threads running forward and backward on one module at once: each thread has its own
    workspace, and every result equals the serial one bitwise."""
    model = cwrnn_ext.ClockworkRNN(6, 64, periods=[1, 2, 4, 8])
    inputs = [torch.randn(30 + 7 * i, 4 + i, 6, generator=torch.Generator().manual_seed(i))
              for i in range(4)]

    def work(x):
        x = x.clone().requires_grad_()
        output, h_n = model(x)
        grads = torch.autograd.grad(output.square().sum() + h_n.sum(), [x] + list(model.parameters()))
        return [output.detach(), h_n.detach()] + list(grads)

    serial = [work(x) for x in inputs]

    def repeat(i):
        for _ in range(3):
            for a, b in zip(work(inputs[i]), serial[i]):
                assert torch.equal(a, b)

    run_in_threads(repeat, len(inputs))


@pytest.mark.parametrize("op", ["forward", "backward"])
def test_op_rejects_unknown_nonlinearity(op):
    problem = make_problem(4, 2, 3, 6, [1, 2], [3, 3], dtype=torch.float32, seed=1, requires_grad=False)
    common = (problem.input, problem.hx, problem.weight_ih, problem.weight_hh)
    if op == "forward":
        call = lambda nl: torch.ops.cwrnn_ext.forward(*common, None, [1, 2], [3, 3], 0, nl, None)  # noqa: E731
    else:
        output, _ = torch.ops.cwrnn_ext.forward(*common, None, [1, 2], [3, 3], 0, "tanh", None)
        call = lambda nl: torch.ops.cwrnn_ext.backward(  # noqa: E731
            torch.ones_like(output), None, *common, output, [1, 2], [3, 3], 0, nl, None)
    call("relu")
    with pytest.raises(RuntimeError, match="nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        call("sigmoid")


def test_small_batch_restores_thread_count():
    """A batch too small to split runs single-threaded; the caller's thread count is restored
    after the call, also when it raises, and the results match a single-threaded run."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        problem = make_problem(40, 1, 3, 24, [1, 2, 4], dtype=torch.float32, seed=6)
        out, h_n, grads = run_kernel(problem, t0=1)
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError, match="lengths"):
            torch.ops.cwrnn_ext.forward(problem.input.detach(), problem.hx.detach(),
                                        problem.weight_ih.detach(), problem.weight_hh.detach(), None,
                                        [1, 2, 4], [8, 8, 8], 0, "tanh", torch.tensor([41]))
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        out1, h_n1, grads1 = run_kernel(problem, t0=1)
        assert torch.equal(out, out1) and torch.equal(h_n, h_n1)
        for name in grads:
            assert torch.equal(grads[name], grads1[name]), name
    finally:
        torch.set_num_threads(before)


# (T, periods, module_sizes, t0): pieces of 64 steps, whole and ragged; the fastest group ticking
# every step or not; a slow group that never ticks; two groups only.
PIPELINE = [
    (256, [1, 2, 4, 8, 16, 32, 64, 128], None, 0),
    (301, [1, 2, 4, 8, 16, 32, 64, 128], None, 5),
    (400, [3, 5, 8, 1000], [9, 7, 5, 3], 2),
    (260, [1, 65], [20, 12], 64),
]


@pytest.mark.parametrize("case", PIPELINE, ids=["exponential", "ragged", "no-period-1", "two-groups"])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_pipelined_small_batch_forward(dtype, B, case):
    """A batch too small to split over threads runs the forward as a two-thread pipeline over
    pieces of time (slower groups ahead, the fastest group and the held rows behind): against the
    reference, values and gradients, and bitwise equal to the same call on one thread, in every
    one of several repeats (the two threads' interleaving differs from run to run)."""
    T, periods, sizes, t0 = case
    H = sum(sizes) if sizes else 32
    problem = make_problem(T, B, 4, H, periods, sizes, dtype=dtype, seed=T + B)
    lengths = random_lengths(T, B, T) if B > 1 else None
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run_kernel(problem, t0=t0, lengths=lengths, grads=False)
        torch.set_num_threads(2)
        compare_runs(problem, dtype, t0=t0, lengths=lengths)
        for repeat in range(10):
            two = run_kernel(problem, t0=t0, lengths=lengths, grads=False)
            assert torch.equal(two[0], one[0]) and torch.equal(two[1], one[1]), repeat
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_pipelined_half_forward_equals_one_thread(dtype):
    """The half types carry each group's float32 state between pieces, not the rounded output."""
    problem = make_problem(333, 1, 4, 48, [1, 2, 4, 8, 16, 32], dtype=dtype, seed=7, requires_grad=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = run_kernel(problem, t0=3, grads=False)
        torch.set_num_threads(1)
        one = run_kernel(problem, t0=3, grads=False)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(two[0], one[0]) and torch.equal(two[1], one[1])
