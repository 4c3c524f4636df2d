"""The compiled kernel against the pure-PyTorch reference: outputs and every gradient."""
import itertools
import zlib

import pytest
import torch

import cwrnn_ext
from helpers import (DEVICES, TOLERANCE, needs_cuda, allowed_mask, assert_close, assert_half_close,
                     assert_nontrivial, make_problem, random_lengths, run_kernel, run_reference)

# Every test runs on each CPU forward path in turn: the rule would pick time-major for most of these shapes.
pytestmark = pytest.mark.usefixtures("forward_path")

DTYPES = [torch.float64, torch.float32]

# (name, periods, module_sizes or None, hidden_size)
LAYOUTS = [
    ("harmonic", [1, 2, 4, 8], None, 8),
    ("harmonic-unequal", [1, 2, 4, 8], [3, 1, 2, 2], 8),
    ("nonharmonic-unequal", [1, 3, 5], [1, 5, 2], 8),
    ("repeated-slowfirst", [2, 2, 6], None, 7),
    ("repeated-slowfirst-unequal", [2, 2, 6], [1, 4, 2], 7),
    ("single", [1], None, 5),
    ("all-equal", [3, 3, 3], [2, 1, 3], 6),
]
LAYOUT_IDS = [layout[0] for layout in LAYOUTS]


def compare(problem, dtype, *, t0=0, nonlinearity="tanh", lengths=None, check_nontrivial=True):
    out_k, hn_k, grads_k = run_kernel(problem, t0=t0, nonlinearity=nonlinearity, lengths=lengths)
    out_r, hn_r, grads_r = run_reference(problem, t0=t0, nonlinearity=nonlinearity, lengths=lengths)
    assert out_k.shape == (problem.input.shape[0], problem.input.shape[1], problem.hidden)
    assert hn_k.shape == (problem.input.shape[1], problem.hidden)
    assert_close(out_k, out_r, dtype, "output")
    assert_close(hn_k, hn_r, dtype, "h_n")
    assert set(grads_k) == set(grads_r)
    for name in grads_r:
        assert_close(grads_k[name], grads_r[name], dtype, f"grad {name}")
        if check_nontrivial:
            assert_nontrivial(grads_r[name], f"reference grad {name}")
    # Structural zeros: the gradient of a disallowed block is exactly 0, not just small.
    mask = allowed_mask(problem.periods, problem.module_sizes).to(grads_k["weight_hh"].device)
    assert torch.equal(grads_k["weight_hh"][~mask], torch.zeros_like(grads_k["weight_hh"][~mask]))
    return out_k, hn_k, grads_k


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("t0", [0, 1, 5])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_layouts_clock_offsets_nonlinearities(dtype, layout, nonlinearity, t0, device):
    _, periods, sizes, hidden = layout
    seed = zlib.crc32(f"{dtype}-{layout[0]}-{nonlinearity}-{t0}".encode()) % 10000
    problem = make_problem(11, 4, 3, hidden, periods, sizes, dtype=dtype, device=device, seed=seed)
    compare(problem, dtype, t0=t0, nonlinearity=nonlinearity,
            lengths=random_lengths(11, 4, seed, device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("use_lengths", [False, True], ids=["nolengths", "lengths"])
@pytest.mark.parametrize("bias", ["both", "none", "ih", "hh"])
@pytest.mark.parametrize("use_hx", [True, False], ids=["hx", "nohx"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_optional_arguments(dtype, use_hx, bias, use_lengths, device):
    problem = make_problem(9, 4, 3, 8, [1, 3, 5], [1, 5, 2], dtype=dtype, device=device, seed=3,
                           hx=use_hx, bias_ih=bias in ("both", "ih"), bias_hh=bias in ("both", "hh"))
    lengths = random_lengths(9, 4, 3, device) if use_lengths else None
    _, _, grads = compare(problem, dtype, t0=1, lengths=lengths)
    assert set(grads) == {name for name, _ in problem.tensors()}


SIZE_CASES = [(T, B, dtype) for T, B in itertools.product([1, 7, 64], [1, 3, 16]) for dtype in DTYPES]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("T,B,dtype", SIZE_CASES, ids=[f"T{T}-B{B}-{d}" for T, B, d in SIZE_CASES])
def test_sequence_and_batch_sizes(T, B, dtype, device):
    problem = make_problem(T, B, 5, 12, [1, 2, 4, 8], [4, 3, 3, 2], dtype=dtype, device=device, seed=T * 31 + B)
    compare(problem, dtype, t0=T % 3, lengths=random_lengths(T, B, T, device) if B > 1 else None)


# The long sequences, on a few combinations only.
LONG_CASES = [
    # T, B, dtype, periods, sizes, H, nonlinearity, t0, lengths
    (130, 16, torch.float32, [1, 2, 4, 8, 16], None, 20, "tanh", 0, True),
    (129, 3, torch.float64, [1, 3, 5], [1, 5, 2], 8, "relu", 1, False),
    (130, 16, torch.float64, [2, 2, 6], [3, 2, 4], 9, "tanh", 5, True),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", LONG_CASES, ids=["T130-B16-f32-harmonic", "T129-B3-f64-nonharmonic-relu",
                                                  "T130-B16-f64-repeated"])
def test_long_sequences(case, device):
    T, B, dtype, periods, sizes, hidden, nonlinearity, t0, use_lengths = case
    problem = make_problem(T, B, 6, hidden, periods, sizes, dtype=dtype, device=device, seed=T + B)
    compare(problem, dtype, t0=t0, nonlinearity=nonlinearity,
            lengths=random_lengths(T, B, 7, device) if use_lengths else None)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", [LAYOUTS[1], LAYOUTS[2], LAYOUTS[4]], ids=[LAYOUT_IDS[1], LAYOUT_IDS[2], LAYOUT_IDS[4]])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_noncontiguous_inputs(dtype, layout, device):
    _, periods, sizes, hidden = layout
    problem = make_problem(10, 5, 4, hidden, periods, sizes, dtype=dtype, device=device, seed=11,
                           noncontiguous=True)
    assert not problem.input.is_contiguous()
    assert not problem.weight_ih.is_contiguous() and not problem.weight_hh.is_contiguous()
    assert not problem.hx.is_contiguous()
    out, hn, grads = compare(problem, dtype, t0=2, lengths=random_lengths(10, 5, 11, device))
    # And the same numbers as the kernel on contiguous copies of the same values.
    dense = make_problem(10, 5, 4, hidden, periods, sizes, dtype=dtype, device=device, seed=11,
                         noncontiguous=True)
    for name, tensor in dense.tensors():
        setattr(dense, name, tensor.detach().contiguous().requires_grad_())
    out_d, hn_d, grads_d = run_kernel(dense, t0=2, lengths=random_lengths(10, 5, 11, device))
    assert_close(out, out_d, dtype, "output (contiguous copy)")
    assert_close(hn, hn_d, dtype, "h_n (contiguous copy)")
    for name in grads:
        assert_close(grads[name], grads_d[name], dtype, f"grad {name} (contiguous copy)")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("use_lengths", [False, True], ids=["nolengths", "lengths"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_input_size_zero(dtype, use_lengths, device):
    problem = make_problem(9, 3, 0, 7, [1, 2, 3], [3, 2, 2], dtype=dtype, device=device, seed=5)
    out, hn, grads = compare(problem, dtype, t0=1, lengths=random_lengths(9, 3, 5, device) if use_lengths else None)
    assert grads["input"].shape == (9, 3, 0) and grads["weight_ih"].shape == (7, 0)
    assert out.abs().max() > 0  # driven by hx and the biases


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("T,B", [(0, 3), (5, 0), (0, 0)])
def test_empty(T, B, device):
    problem = make_problem(T, B, 4, 6, [1, 2, 3], dtype=torch.float64, device=device, seed=2)
    for lengths in (None, torch.full((B,), 0, dtype=torch.int64, device=device)):
        out_k, hn_k, grads_k = run_kernel(problem, lengths=lengths)
        out_r, hn_r, grads_r = run_reference(problem, lengths=lengths)
        assert out_k.shape == (T, B, 6) and hn_k.shape == (B, 6)
        assert torch.equal(hn_k, problem.hx.detach())  # nothing ran: h_n is hx
        for name in grads_r:
            assert_close(grads_k[name], grads_r[name], torch.float64, f"grad {name}")


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_cuda(dtype):
    """The half-type kernels (float32 accumulation) are at least about as accurate as PyTorch
    doing the same math in that dtype, both measured against float64 from the same inputs."""
    problem = make_problem(20, 4, 5, 12, [1, 2, 4, 8], dtype=dtype, device="cuda", seed=9)

    def same_values(dtype_, device):
        copy = make_problem(20, 4, 5, 12, [1, 2, 4, 8], dtype=dtype, device="cuda", seed=9)
        for name, tensor in copy.tensors():  # the same rounded values
            setattr(copy, name, tensor.detach().to(device, dtype_).requires_grad_())
        return copy

    lengths = random_lengths(20, 4, 9, "cuda")
    out_k, hn_k, grads_k = run_kernel(problem, t0=1, lengths=lengths)
    out_e, hn_e, grads_e = run_reference(same_values(torch.float64, "cpu"), t0=1, lengths=lengths.cpu())
    out_p, hn_p, grads_p = run_reference(same_values(dtype, "cuda"), t0=1, lengths=lengths)
    assert out_k.dtype == dtype
    assert_half_close(out_k, out_e, out_p, "output")
    assert_half_close(hn_k, hn_e, hn_p, "h_n")
    for name in grads_e:
        assert_half_close(grads_k[name], grads_e[name], grads_p[name], f"grad {name}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_float32_activation_accuracy(nonlinearity, device):
    """One unit, one step, weight 1: the output is f(x) itself. The float32 kernel may use a fast
    tanh, but within a few ulp, saturating to +-1 and propagating NaN."""
    special = [0.0, 1e-30, -1e-30, 1e-6, 7.9, 8.0, 3e38, -3e38, float("inf"), float("-inf"), float("nan")]
    values = torch.cat([torch.linspace(-12, 12, 100001), torch.tensor(special)]).to(device)
    one, zero = torch.ones(1, 1, device=device), torch.zeros(1, 1, device=device)
    output, _ = cwrnn_ext.clockwork_rnn(values.view(1, -1, 1), None, one, zero, None, None, [1],
                                        nonlinearity=nonlinearity)
    expected = torch.tanh(values) if nonlinearity == "tanh" else torch.relu(values)
    torch.testing.assert_close(output.flatten(), expected, rtol=1e-6, atol=1e-30, equal_nan=True)


def test_tolerances_are_meaningful():
    """Guard against a helper that compares nothing: a perturbation well above the tolerance
    must be caught."""
    a = torch.randn(5, dtype=torch.float64) * 1e3
    a[1] = 1e-6  # a small entry among large ones is checked on its own scale
    for dtype, (rtol, atol) in TOLERANCE.items():
        b = a.to(dtype)
        assert_close(b, b.clone(), dtype)
        for index in (1, 2):
            c = b.clone()
            c[index] += 100 * (atol + rtol * abs(b[index]))
            with pytest.raises(AssertionError):
                assert_close(c, b, dtype)
        nan = b.clone()
        nan[3] = float("nan")
        with pytest.raises(AssertionError):
            assert_close(nan, b, dtype)


def test_half_criterion_is_meaningful():
    expected = torch.randn(100, dtype=torch.float64)
    for dtype in (torch.float16, torch.bfloat16):
        same_math = expected.to(dtype)  # one rounding: PyTorch's own error
        assert_half_close(same_math, expected, same_math, "rounded once")
        worse = same_math.clone()
        worse[7] += 20 * torch.finfo(dtype).eps * (1 + abs(float(expected[7])))
        with pytest.raises(AssertionError):
            assert_half_close(worse, expected, same_math, "perturbed")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("t0", [0, 5])
@pytest.mark.parametrize("layout", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_generic_schedule(dtype, layout, t0, nonlinearity):
    """The device-generic schedule (csrc/generic/module_major.cpp, the one the CUDA backend runs: held
    terms added inside the recurrence, deltas summed per held value), run on the CPU through its
    test ops, against the CPU's own schedule (checked against the reference above): outputs and
    every gradient, with lengths."""
    _, periods, sizes, hidden = layout
    seed = zlib.crc32(f"generic-{dtype}-{layout[0]}-{t0}-{nonlinearity}".encode()) % 10000
    p = make_problem(23, 3, 4, hidden, periods, sizes, dtype=dtype, seed=seed, requires_grad=False)
    lengths = random_lengths(23, 3, seed)
    args = (p.input, p.hx, p.weight_ih, p.weight_hh, p.bias_ih + p.bias_hh, list(p.periods),
            list(p.module_sizes), t0, nonlinearity, lengths)
    expected = torch.ops.cwrnn_ext.forward(*args)
    got = torch.ops.cwrnn_ext._generic_forward(*args)
    for name, g, e in zip(("output", "h_n"), got, expected):
        assert_close(g, e, dtype, name)
    gen = torch.Generator().manual_seed(seed)
    upstream = [torch.randn(e.shape, generator=gen, dtype=dtype) for e in expected]
    backward_args = (*upstream, *args[:4], expected[0], *args[5:])
    expected_grads = torch.ops.cwrnn_ext.backward(*backward_args)
    got_grads = torch.ops.cwrnn_ext._generic_backward(*backward_args)
    for name, g, e in zip(("input", "hx", "weight_ih", "weight_hh", "bias"), got_grads, expected_grads):
        assert_nontrivial(e, f"grad of {name}")
        assert_close(g, e, dtype, f"grad of {name}")
