"""The CPU kernels' threaded paths, for a ThreadSanitizer build (.ci/thread_sanitize): each
scenario runs kernels on two OpenMP threads (and some from several Python threads at once) and
checks the results against the reference, so a race that changes values fails here even where
ThreadSanitizer is silent.

    python .ci/tsan/scenarios.py [NAME ...]      # all scenarios by default; from the repository root
"""
import os
import sys
import time

import torch

# This checkout's package and test helpers, whatever else is installed.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import cwrnn_ext  # noqa: E402
from cwrnn_ext import reference  # noqa: E402
from helpers import (assert_close, make_problem, random_lengths, run, run_kernel,  # noqa: E402
                     run_in_threads, run_reference)

THREADS = 2


def _compare(kernel, expected, what):
    out, h_n, grads = kernel
    ref_out, ref_h_n, ref_grads = expected
    assert_close(out, ref_out, what=f"{what} output")
    assert_close(h_n, ref_h_n, what=f"{what} h_n")
    for name, grad in ref_grads.items():
        assert_close(grads[name], grad, what=f"{what} grad {name}")


def pipelined_forward():
    """B = 1, T >= 4 * 64 steps, several period groups, two threads: the two-chain pipeline over
    time (csrc/cpu/pipeline.h), forward and backward."""
    for dtype in (torch.float32, torch.float64):
        problem = make_problem(512, 1, 8, 64, [1, 2, 4, 8, 16], dtype=dtype, seed=1)
        with cwrnn_ext.ops.forced_forward_path("module_major"):
            _compare(run_kernel(problem), run_reference(problem), f"pipelined {dtype}")
            assert cwrnn_ext.ops.last_forward_path() == "pipelined"


def threaded_schedules():
    """A batch split over the threads (B >= 4), forward and backward, with and without lengths."""
    for lengths in (None, random_lengths(48, 8, seed=2)):
        problem = make_problem(48, 8, 6, 48, [1, 2, 4, 8], dtype=torch.float32, seed=2)
        with cwrnn_ext.ops.forced_forward_path("module_major"):
            _compare(run_kernel(problem, lengths=lengths), run_reference(problem, lengths=lengths),
                     f"batch over threads, lengths={lengths is not None}")


def output_pool_from_python_threads():
    """Results of 1 MiB and more (output, grad_input) come from the output pool: four Python
    threads, each calling forward and backward and freeing the results, share it."""
    problem = make_problem(64, 16, 128, 128, [1, 2, 4, 8], dtype=torch.float64, seed=3)  # 1 MiB each
    expected = run_reference(problem)

    def work(i):  # module-major: the forward whose output comes from the pool
        for round in range(3):
            _compare(run_kernel(problem), expected, f"pool, Python thread {i} round {round}")

    with cwrnn_ext.ops.forced_forward_path("module_major"):
        run_in_threads(work, 4)


def step_paths():
    """The one-step op (a clock per row, several Python threads at once), a Stream stepping
    through a sequence, and the time-major sequence forward."""
    torch.manual_seed(4)
    cell = cwrnn_ext.ClockworkRNNCell(5, 64, periods=[1, 2, 4, 8]).double()
    weights = (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    x, h = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 64, dtype=torch.float64)
    clocks = torch.arange(8) * 3

    def work(i):
        got = cell(x, h, t=clocks + i)
        for b in range(8):
            expected = reference.clockwork_rnn(x[b:b + 1].unsqueeze(0), h[b:b + 1], *weights, cell.periods,
                                               cell.module_sizes, int(clocks[b]) + i)[1]
            assert_close(got[b:b + 1], expected, what=f"step, Python thread {i}, row {b}")
        got.sum().backward()  # the step's backward op

    run_in_threads(work, 3)

    rnn = cwrnn_ext.ClockworkRNN(5, 64, periods=[1, 2, 4, 8], batch_first=True).double()
    sequence = torch.randn(8, 40, 5, dtype=torch.float64)
    stream = cwrnn_ext.Stream(rnn)
    with torch.no_grad():
        stepped = torch.stack([stream.step(sequence[:, t]) for t in range(40)], dim=1)
        expected = reference.clockwork_rnn(sequence.transpose(0, 1), None, rnn.weight_ih_l0, rnn.weight_hh_l0,
                                           rnn.bias_ih_l0, rnn.bias_hh_l0, rnn.periods, rnn.module_sizes)[0]
    assert_close(stepped, expected.transpose(0, 1), what="Stream.step")

    problem = make_problem(32, 8, 5, 64, [1, 2, 4, 8], dtype=torch.float64, seed=5)
    with cwrnn_ext.ops.forced_forward_path("time_major"):
        _compare(run(cwrnn_ext.clockwork_rnn, problem), run_reference(problem), "time-major forward")


SCENARIOS = {f.__name__: f for f in (pipelined_forward, threaded_schedules, output_pool_from_python_threads,
                                     step_paths)}


def main(names):
    torch.set_num_threads(THREADS)
    assert torch.get_num_threads() == THREADS
    from cwrnn_ext import ops
    assert ops.KERNELS_LOADED, ops.LOAD_ERROR
    # Every call on both threads, however small: these scenarios exist to race them (the work
    # threshold would run the small ones on one thread).
    ops._C.set_min_parallel_macs(0)
    assert os.path.dirname(os.path.abspath(cwrnn_ext.__file__)) == os.path.join(ROOT, "cwrnn_ext"), cwrnn_ext.__file__
    print(f"scenarios: cwrnn_ext from {os.path.dirname(cwrnn_ext.__file__)}, {THREADS} threads", flush=True)
    for name in names or SCENARIOS:
        start = time.monotonic()
        SCENARIOS[name]()
        print(f"scenarios: {name} passed ({time.monotonic() - start:.1f} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
