"""Guards, runnable without a GPU, against reintroducing host synchronisation into the
code that the CUDA kernels share (csrc/generic/module_major.cpp, step_generic.cpp). On a GPU, tests/test_cuda.py checks
the real thing: forward and backward under torch.cuda.set_sync_debug_mode("error") and captured
in a CUDA graph."""
import re
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import cwrnn_ext

ROOT = Path(__file__).resolve().parent.parent
SCHEDULE_SOURCES = [ROOT / "csrc" / "generic" / "module_major.cpp", ROOT / "csrc" / "generic" / "step_generic.cpp",
                    *sorted((ROOT / "csrc" / "cuda").glob("*.cpp"))]

# Ops that copy between host and device or read a device value on the host.
SYNCING_OPS = {"aten::item", "aten::_local_scalar_dense", "aten::to", "aten::_to_copy", "aten::lift_fresh",
               "aten::cpu", "aten::tolist"}


def test_schedule_dispatches_no_host_device_ops():
    """Forward and backward of the generic schedule, the one CUDA runs (the CPU's own variant,
    csrc/cpu/module_major_cpu.cpp, never meets a GPU), run on the CPU through its test ops, without
    lengths (lengths on the host are checked on the host): none of the ops a GPU would have to
    wait for."""
    model = cwrnn_ext.ClockworkRNN(4, 24, periods=[1, 2, 4, 8])
    x, hx = torch.randn(17, 3, 4), torch.zeros(3, 24)
    weights = (model.weight_ih_l0.detach(), model.weight_hh_l0.detach())
    layout = (model.periods, model.module_sizes, 1, "tanh", None)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out, h_n = torch.ops.cwrnn_ext._generic_forward(x, hx, *weights, None, *layout)
        grads = torch.ops.cwrnn_ext._generic_backward(out, h_n, x, hx, *weights, out, *layout)
    assert all(g is not None for g in grads)
    names = {event.name for event in prof.events()}
    assert "cwrnn_ext::_generic_forward" in names and "cwrnn_ext::_generic_backward" in names
    assert not names & SYNCING_OPS, f"the schedule calls {sorted(names & SYNCING_OPS)}"


@pytest.mark.parametrize("path", SCHEDULE_SOURCES, ids=lambda p: p.name)
def test_schedule_builds_no_host_tensors(path):
    """at::tensor(values) and from_blob make a host tensor that a GPU schedule would have to
    copy over (a blocking copy; no CUDA graph): build indices with device ops instead."""
    code = re.sub(r"//[^\n]*", "", path.read_text())
    for pattern in (r"\bat::tensor\s*\(", r"\bfrom_blob\s*\(", r"\.cpu\s*\(", r"\.tolist\s*\("):
        assert not re.search(pattern, code), f"{path.name} uses {pattern}"
    # .item() only on host tensors: every use is guarded by is_cpu() in the same statement.
    for statement in re.findall(r"[^;{}]*\.item\s*<[^;]*;", code):
        assert "is_cpu" in code[max(0, code.find(statement) - 200):code.find(statement)], \
            f"{path.name}: .item() not guarded by is_cpu(): {statement.strip()}"
