"""One work threshold decides how many threads a CPU call uses (csrc/cpu/threads.h): below it a
forward, backward or step runs on the calling thread alone (no parallel region to wait on when
another process holds a core); above it, the batch is spread over the threads torch allows.
Checked through the thread count the policy reports, never by timing."""
import pytest
import torch

from cwrnn_ext import ops

from helpers import make_problem

pytestmark = pytest.mark.skipif(not ops.KERNELS_LOADED, reason="compiled extension not loaded")


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _forward_backward(problem, periods, module_sizes):
    args = (problem.input.detach(), problem.hx.detach(), problem.weight_ih.detach(),
            problem.weight_hh.detach(), None, periods, module_sizes, 0, "tanh", None)
    output, h_n = torch.ops.cwrnn_ext.forward(*args)
    forward_threads = ops._C.last_call_threads()
    torch.ops.cwrnn_ext.backward(torch.ones_like(output), None, args[0], args[1], args[2], args[3], output,
                                 periods, module_sizes, 0, "tanh", None)
    return forward_threads, ops._C.last_call_threads()


def _step(problem, periods, module_sizes):
    torch.ops.cwrnn_ext.step(problem.input[0].detach(), problem.hx.detach(), problem.weight_ih.detach(),
                             problem.weight_hh.detach(), None, None, periods, module_sizes, 0, None, "tanh")
    return ops._C.last_call_threads()


def test_tiny_calls_run_on_one_thread(two_threads):
    periods, sizes = [1, 2, 4, 8], [4, 4, 4, 4]
    problem = make_problem(3, 4, 4, 16, periods, sizes, dtype=torch.float32)
    assert _forward_backward(problem, periods, sizes) == (1, 1)
    assert _step(problem, periods, sizes) == 1


def test_large_calls_use_the_threads(two_threads):
    periods, sizes = [1, 2, 4, 8], [64, 64, 64, 64]
    problem = make_problem(256, 32, 64, 256, periods, sizes, dtype=torch.float32)
    assert _forward_backward(problem, periods, sizes) == (2, 2)
    wide = make_problem(1, 64, 256, 1024, periods, [256] * 4, dtype=torch.float32)
    assert _step(wide, periods, [256] * 4) == 2


def test_every_op_follows_the_one_threshold(two_threads):
    # The same mid-sized call on one thread above the threshold and on two below it, for the
    # forward, the backward (its GEMMs included) and the step alike.
    periods, sizes = [1, 2, 4, 8], [16, 16, 16, 16]
    problem = make_problem(20, 4, 16, 64, periods, sizes, dtype=torch.float32)
    default = ops._C.set_min_parallel_macs(1 << 62)
    try:
        assert _forward_backward(problem, periods, sizes) == (1, 1)
        assert _step(problem, periods, sizes) == 1
        ops._C.set_min_parallel_macs(0)
        assert _forward_backward(problem, periods, sizes) == (2, 2)
        assert _step(problem, periods, sizes) == 2
    finally:
        ops._C.set_min_parallel_macs(default)


def test_batch_too_small_to_split_uses_one_thread_unless_pipelined(two_threads):
    periods, sizes = [1, 2, 4, 8], [64, 64, 64, 64]
    short = make_problem(128, 1, 64, 256, periods, sizes, dtype=torch.float32)  # too short to pipeline
    assert _forward_backward(short, periods, sizes) == (1, 1)
    long = make_problem(512, 1, 64, 256, periods, sizes, dtype=torch.float32)  # the two-thread pipeline
    assert _forward_backward(long, periods, sizes)[0] == 2


def test_threshold_setting_is_checked_and_restored():
    default = ops._C.set_min_parallel_macs(0)
    assert default > 0
    assert ops._C.set_min_parallel_macs(default) == 0
    with pytest.raises(ValueError, match="macs"):
        ops._C.set_min_parallel_macs(-1)
    assert ops._C.set_min_parallel_macs(default) == default
