"""Large CPU results (output, grad_input) come from a pool that reuses the memory of dead ones
(csrc/cpu/output_pool.h). A reused block still holds the old tensor's values, so every element of a
new result must be written: the tests fill dead results with NaN and check that the next call,
handed the same memory, matches the reference. Live results never share memory, and the pool keeps
no more than its limit."""
import os
import subprocess
import sys

import pytest
import torch

import cwrnn_ext
from cwrnn_ext import reference
from helpers import assert_close, make_problem, run_in_threads

# The module-major schedule's own machinery: the rule would run most of these shapes time-major.
pytestmark = pytest.mark.usefixtures("module_major_path")

POOLED_BYTES = 1 << 20  # csrc/cpu/output_pool.h, kPooledBytes
LIMIT_BYTES = 64 << 20  # the default CWRNN_OUTPUT_CACHE_MB
forward_op = torch.ops.cwrnn_ext.forward
backward_op = torch.ops.cwrnn_ext.backward


def op_args(problem, t0, lengths):
    bias = problem.bias_ih + problem.bias_hh
    return (problem.input.detach(), problem.hx.detach(), problem.weight_ih.detach(),
            problem.weight_hh.detach(), bias.detach(), problem.periods, problem.module_sizes, t0,
            "tanh", lengths)


def reference_forward(problem, t0, lengths):
    with torch.no_grad():
        return reference.clockwork_rnn(problem.input, problem.hx, problem.weight_ih, problem.weight_hh,
                                       problem.bias_ih, problem.bias_hh, problem.periods,
                                       problem.module_sizes, t0, "tanh", lengths)


# (periods, t0, lengths): a group ticking every step or none; slow groups that tick once or never;
# padded sequences (including an empty one), whose outputs are set to 0.
CASES = [
    ([1, 2, 4, 8, 16, 32, 64, 128], 0, None),
    ([3, 5, 7, 200], 4, None),
    ([1, 4, 16], 3, [64, 0, 17, 64, 1, 30, 64, 63, 5, 64, 12, 64, 40, 2, 64, 9]),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", CASES, ids=["exponential", "no-fast-group", "lengths"])
def test_reused_output_is_fully_written(dtype, case):
    periods, t0, lengths = case
    T, B = 64, 16
    H = POOLED_BYTES // (T * B * dtype.itemsize)  # the smallest pooled output
    problem = make_problem(T, B, 5, H, periods, dtype=dtype, seed=len(periods))
    lengths = None if lengths is None else torch.tensor(lengths)
    cwrnn_ext.empty_cache()  # no block of this size left by an earlier test: ours is the one handed back
    out, _ = forward_op(*op_args(problem, t0, lengths))
    address = out.data_ptr()
    out.fill_(float("nan"))
    del out
    out, h_n = forward_op(*op_args(problem, t0, lengths))
    assert out.data_ptr() == address, "the pool did not hand the dead output's memory back"
    expected_out, expected_h_n = reference_forward(problem, t0, lengths)
    assert_close(out, expected_out, dtype, "output")
    assert_close(h_n, expected_h_n, dtype, "h_n")


def test_reused_grad_input_is_fully_written():
    T, B, I, H = 64, 16, 256, 32  # grad_input is the pooled result: T * B * I * 4 bytes = 1 MiB
    problem = make_problem(T, B, I, H, [1, 2, 4], dtype=torch.float32, seed=3)
    args = op_args(problem, 1, None)
    out, _ = forward_op(*args)
    grad_output = torch.randn_like(out)
    backward_args = (grad_output, None, *args[:4], out, *args[5:])
    cwrnn_ext.empty_cache()
    grad_input = backward_op(*backward_args)[0]
    assert grad_input.nbytes >= POOLED_BYTES
    expected = grad_input.clone()
    address = grad_input.data_ptr()
    grad_input.fill_(float("nan"))
    del grad_input
    grad_input = backward_op(*backward_args)[0]
    assert grad_input.data_ptr() == address
    assert torch.equal(grad_input, expected)


def test_live_outputs_never_share_memory():
    problem = make_problem(64, 16, 5, 256, [1, 2, 4, 8], dtype=torch.float32, seed=4)
    outputs = [forward_op(*op_args(problem, t0, None))[0] for t0 in range(4)]
    spans = sorted((o.data_ptr(), o.data_ptr() + o.nbytes) for o in outputs)
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
    for t0, out in enumerate(outputs):
        assert_close(out, reference_forward(problem, t0, None)[0], torch.float32, f"output t0={t0}")


def test_pool_keeps_at_most_its_limit():
    """Dead results of many sizes, together far above the limit: the pool keeps at most the limit
    (dropping the oldest), and keeps something."""
    outputs = []
    for H in range(256, 256 * 12, 256):  # 1 to 11 MiB each, 66 MiB in all
        problem = make_problem(64, 16, 2, H, [1, 2], dtype=torch.float32, seed=H, requires_grad=False)
        outputs.append(forward_op(*op_args(problem, 0, None))[0])
    del outputs
    cached = cwrnn_ext.memory_stats()["pool.cached_bytes"]
    assert 0 < cached <= LIMIT_BYTES


def test_pool_off_keeps_nothing():
    script = ("import torch, cwrnn_ext\n"
              "x = torch.randn(64, 16, 2); w_ih = torch.randn(256, 2); w_hh = torch.randn(256, 256)\n"
              "for _ in range(3):\n"
              "    out, _ = torch.ops.cwrnn_ext.forward(x, torch.zeros(16, 256), w_ih, w_hh, None, [1, 2],"
              " [128, 128], 0, 'tanh', None)\n"
              "    del out\n"
              "stats = cwrnn_ext.memory_stats()\n"
              "print(stats['pool.cached_bytes'], stats['pool.limit_bytes'])\n")
    env = dict(os.environ, CWRNN_OUTPUT_CACHE_MB="0")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0"]


def test_threads_taking_and_returning_blocks_at_once():
    """Python threads creating, checking, poisoning and dropping pooled outputs at once: every
    result equals the serial one bitwise."""
    problems = [make_problem(64, 16, 3, 256, [1, 2, 4, 8], dtype=torch.float32, seed=i,
                             requires_grad=False) for i in range(3)]
    serial = [forward_op(*op_args(p, 0, None))[0].clone() for p in problems]

    def work(i):
        for _ in range(6):
            out, _ = forward_op(*op_args(problems[i], 0, None))
            assert torch.equal(out, serial[i])
            out.fill_(float("nan"))

    run_in_threads(work, len(problems))


def test_profiler_sees_pooled_results():
    """torch.profiler(profile_memory=True) counts a pooled result like any other allocation."""
    from torch.profiler import ProfilerActivity, profile
    problem = make_problem(64, 16, 5, 256, [1, 2, 4], dtype=torch.float32, seed=8, requires_grad=False)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out, _ = forward_op(*op_args(problem, 0, None))
    events = prof.profiler.kineto_results.events()  # as benchmarks/measure.py reads them
    allocated = sum(e.nbytes() for e in events if e.name() == "[memory]" and e.nbytes() > 0
                    and e.device_type() == torch.autograd.DeviceType.CPU)
    assert out.nbytes >= POOLED_BYTES
    assert allocated >= out.nbytes
