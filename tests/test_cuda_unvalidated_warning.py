"""Until the CUDA kernels have run on a GPU, the first call that runs them warns (UserWarning, once
per process) that only the CPU emulation of their source checks them. Tested without a GPU
through the helper the two CUDA dispatch points call (functional._run_layer, step.run_step)."""
import warnings

import pytest
import torch

import cwrnn_ext
from cwrnn_ext import ops


def _warnings_of(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [w for w in caught if "never run on a GPU" in str(w.message)]


def test_warns_once_per_process(monkeypatch):
    monkeypatch.setattr(ops, "_cuda_warned", False)
    first = _warnings_of(ops.warn_cuda_unvalidated_once)
    assert [w.category for w in first] == [UserWarning]
    assert str(first[0].message) == ops.CUDA_UNVALIDATED
    assert "emulat" in ops.CUDA_UNVALIDATED
    assert _warnings_of(ops.warn_cuda_unvalidated_once) == []


def test_silent_once_validated(monkeypatch):
    monkeypatch.setattr(ops, "_cuda_warned", False)
    monkeypatch.setattr(ops, "CUDA_KERNELS_RUN_ON_A_GPU", True)
    assert _warnings_of(ops.warn_cuda_unvalidated_once) == []


def test_not_while_compiling(monkeypatch):
    """A warning inside traced code would break torch.compile's graph (fullgraph=True fails)."""
    monkeypatch.setattr(ops, "_cuda_warned", False)
    monkeypatch.setattr(ops, "_is_compiling", lambda: True)
    assert _warnings_of(ops.warn_cuda_unvalidated_once) == []
    assert ops._cuda_warned is False


@pytest.mark.skipif(not ops.KERNELS_LOADED, reason="needs the compiled CPU kernels")
def test_cpu_calls_do_not_warn(monkeypatch):
    monkeypatch.setattr(ops, "_cuda_warned", False)
    rnn = cwrnn_ext.ClockworkRNN(3, 8, num_modules=2)
    cell = cwrnn_ext.ClockworkRNNCell(3, 8, num_modules=2)
    assert _warnings_of(lambda: rnn(torch.randn(2, 50, 3))[0].sum().backward()) == []
    assert _warnings_of(lambda: cell(torch.randn(2, 3), t=3)) == []
    assert ops._cuda_warned is False


@pytest.mark.skipif(not ops.KERNELS_LOADED, reason="needs the compiled extension (its ops' fake kernels)")
@pytest.mark.skipif(not torch.backends.cuda.is_built(), reason="a CPU-only torch has no fake CUDA tensors")
def test_tracing_a_cuda_call_warns(monkeypatch):
    """Under torch.compile the dispatch points stay silent (above); the fake kernels, which run
    when a call is traced, warn instead. Fake CUDA tensors need no GPU."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    monkeypatch.setattr(ops, "_cuda_warned", False)
    with FakeTensorMode():
        x, h = torch.empty(5, 2, 3, device="cuda"), torch.empty(2, 8, device="cuda")
        w_ih, w_hh, b = torch.empty(8, 3, device="cuda"), torch.empty(8, 8, device="cuda"), torch.empty(8, device="cuda")
        traced = _warnings_of(lambda: torch.ops.cwrnn_ext.forward(x, h, w_ih, w_hh, b, [1, 2], [4, 4], 0, "tanh", None))
        assert [w.category for w in traced] == [UserWarning]
        assert _warnings_of(lambda: torch.ops.cwrnn_ext.step(x[0], h, w_ih, w_hh, b, b, [1, 2], [4, 4], 3, None,
                                                             "tanh")) == []  # once per process
        monkeypatch.setattr(ops, "_cuda_warned", False)
        assert len(_warnings_of(lambda: torch.ops.cwrnn_ext.step(x[0], h, w_ih, w_hh, b, b, [1, 2], [4, 4], 3,
                                                                 None, "tanh"))) == 1
