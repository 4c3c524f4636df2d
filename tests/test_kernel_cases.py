"""Cases the grid in test_kernel_vs_reference.py does not reach: groups large enough for the CPU
kernel's register-blocked path, partial requires_grad, chunked streaming with lengths, several
Python threads on one module, and memory over thousands of calls."""
import threading

import pytest
import torch

import cwrnn_ext
from helpers import DEVICES, assert_close, make_problem, random_lengths
from test_kernel_vs_reference import compare

# The module-major schedule's own machinery: the rule would run most of these shapes time-major.
pytestmark = pytest.mark.usefixtures("module_major_path")

# The CPU recurrence keeps 128 bytes of accumulators per row (32 float32 or 16 float64 columns)
# and handles batch rows in tiles of 4; groups of k >= 32 (float32) / 16 (float64) take the
# blocked path, and k not a multiple of the block takes the ragged edge too.
LARGE_GROUPS = [
    # name, periods, module_sizes
    ("k32-exact", [1, 2], [32, 32]),
    ("k40-ragged", [1, 3], [40, 17]),
    ("k70-repeated", [2, 2, 4], [35, 35, 33]),
    ("k96-single", [1], [96]),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("B", [1, 2, 3, 4, 9])
@pytest.mark.parametrize("layout", LARGE_GROUPS, ids=[name for name, _, _ in LARGE_GROUPS])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_large_groups(dtype, layout, B, device):
    _, periods, sizes = layout
    problem = make_problem(13, B, 5, sum(sizes), periods, sizes, dtype=dtype, device=device, seed=B)
    compare(problem, dtype, t0=B % 3, nonlinearity="relu" if B == 3 else "tanh",
            lengths=random_lengths(13, B, B, device) if B > 1 else None)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("frozen", [("input",), ("hx",), ("weight_ih", "bias_ih"), ("weight_hh",),
                                    ("input", "hx", "bias_hh")], ids="-".join)
def test_partial_requires_grad(frozen, device):
    """Gradients of the tensors that require them are those of the all-requiring call."""
    full = make_problem(10, 3, 4, 9, [1, 2, 4], [3, 3, 3], device=device, seed=4)
    part = make_problem(10, 3, 4, 9, [1, 2, 4], [3, 3, 3], device=device, seed=4)
    for name in frozen:
        getattr(part, name).requires_grad_(False)
    lengths = random_lengths(10, 3, 4, device)
    output, h_n = cwrnn_ext.clockwork_rnn(*part.args(1, "tanh", lengths))
    live = [(n, t) for n, t in part.tensors() if t.requires_grad]
    go, gh = torch.randn_like(output), torch.randn_like(h_n)
    got = torch.autograd.grad((output, h_n), [t for _, t in live], (go, gh))
    want = torch.autograd.grad(cwrnn_ext.clockwork_rnn(*full.args(1, "tanh", lengths)),
                               [getattr(full, n) for n, _ in live], (go, gh))
    for (name, _), a, b in zip(live, got, want):
        assert torch.equal(a, b), f"grad {name} changed when {frozen} were frozen"


@pytest.mark.parametrize("device", DEVICES)
def test_chunks_with_lengths_equal_one_run(device):
    """Streaming a padded batch in uneven chunks (hx = previous h_n, t0 = steps consumed, each
    row's remaining length clipped to the chunk) gives the one-call output and h_n."""
    model = cwrnn_ext.ClockworkRNN(3, 10, periods=[1, 2, 3, 6], num_layers=2, dtype=torch.float64,
                                   device=device)
    T, B = 23, 6
    x = torch.randn(T, B, 3, dtype=torch.float64, device=device)
    lengths = torch.tensor([23, 0, 5, 12, 13, 22])
    expected, expected_hn = model(x, t0=2, lengths=lengths)
    outputs, h, start = [], None, 0
    for size in (4, 1, 8, 3, 7):
        part_lengths = (lengths - start).clamp(0, size)
        out, h = model(x[start:start + size], h, t0=2 + start, lengths=part_lengths)
        outputs.append(out)
        start += size
    assert start == T
    assert_close(torch.cat(outputs), expected, what="chunked output")
    assert_close(h, expected_hn, what="chunked h_n")


def test_python_threads_share_a_module():
    """Forward and backward on one module from several Python threads at once give, bitwise,
    what the same calls give one after another."""
    model = cwrnn_ext.ClockworkRNN(4, 40, periods=[1, 2, 4, 8], num_layers=2)
    inputs = [torch.randn(30, 5, 4, generator=torch.Generator().manual_seed(i)) for i in range(6)]
    lengths = random_lengths(30, 5, 3)

    def work(x):
        xg = x.clone().requires_grad_()
        out, h_n = model(xg, t0=1, lengths=lengths)
        grads = torch.autograd.grad(out.square().sum() + h_n.sum(), [xg] + list(model.parameters()))
        return [out.detach(), h_n.detach(), *grads]

    serial = [work(x) for x in inputs]
    results = [None] * len(inputs)

    def worker(i):
        for _ in range(3):
            results[i] = work(inputs[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, (a_list, b_list) in enumerate(zip(results, serial)):
        for a, b in zip(a_list, b_list):
            assert torch.equal(a, b), f"thread {i} differs from the serial run"


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_getaffinity"), reason="needs /proc (Linux)")
def test_memory_is_flat_over_many_calls():
    """Thousands of forward+backward calls do not grow the process: a leak of even one output
    per call (20 KB here) would add about 60 MB over the 3,000 measured calls."""
    model = cwrnn_ext.ClockworkRNN(6, 64, periods=[1, 2, 4, 8])
    x = torch.randn(20, 4, 6)
    lengths = torch.tensor([20, 3, 0, 11])

    def call():
        out, h_n = model(x.requires_grad_(), t0=3, lengths=lengths)
        (out.sum() + h_n.sum()).backward()
        model.zero_grad(set_to_none=True)
        x.grad = None

    for _ in range(300):  # allocator and autograd caches reach their steady state
        call()
    before = _resident_bytes()
    for _ in range(3000):
        call()
    grown = _resident_bytes() - before
    assert grown < 16 * 2 ** 20, f"resident memory grew by {grown / 2 ** 20:.1f} MiB over 3,000 calls"
