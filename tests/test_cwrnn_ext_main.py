"""`python -m cwrnn_ext` reports what was built: versions, extension, backends, GPU, threads, dtypes."""
import os
import subprocess
import sys

import torch

import cwrnn_ext
from cwrnn_ext import __main__ as cli
from cwrnn_ext import ops


def _line(lines, prefix):
    found = [line for line in lines if line.startswith(prefix)]
    assert len(found) == 1, (prefix, lines)
    return found[0]


def test_runs_as_a_module():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, "-m", "cwrnn_ext"], capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.abspath(__file__)), timeout=300)
    assert done.returncode == (0 if ops.KERNELS_LOADED else 1), done.stderr
    lines = done.stdout.splitlines()
    assert _line(lines, "cwrnn_ext ").startswith(f"cwrnn_ext {cwrnn_ext.__version__} (")
    assert torch.__version__ in _line(lines, "torch ")
    for prefix in ("compiled extension: ", "compiled backends: ", "GPU visible: ", "CPU threads: ",
                   "dtypes with a kernel on cpu: ", "dtypes with a kernel on cuda: "):
        _line(lines, prefix)


def test_this_build():
    lines = cli.report()
    if ops.KERNELS_LOADED:
        assert _line(lines, "compiled extension: ").startswith("compiled extension: loaded (")
        assert _line(lines, "dtypes with a kernel on cpu: ") == (
            "dtypes with a kernel on cpu: float32, float64, bfloat16, float16; "
            "one step at a time: float32, float64")
        backends = ["CPU", "CUDA"] if cwrnn_ext.cuda_kernels_available() else ["CPU"]
        assert _line(lines, "compiled backends: ") == "compiled backends: " + ", ".join(backends)
    expected_gpu = "yes" if torch.cuda.is_available() else "no"
    assert _line(lines, "GPU visible: ").startswith("GPU visible: " + expected_gpu)
    assert _line(lines, "CPU threads: ").startswith(f"CPU threads: {torch.get_num_threads()} used by torch")


def test_cuda_compiled_without_gpu(monkeypatch):
    """'Compiled in' and 'a GPU is present' are reported separately."""
    monkeypatch.setattr(ops, "KERNELS_LOADED", True)
    monkeypatch.setattr(ops, "_CUDA_KERNELS", True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    lines = cli.report()
    assert _line(lines, "compiled backends: ") == "compiled backends: CPU, CUDA"
    assert _line(lines, "GPU visible: ") == "GPU visible: no"
    assert _line(lines, "dtypes with a kernel on cuda: ") == (
        "dtypes with a kernel on cuda: float32, float64, bfloat16, float16 "
        "(compiled in; no GPU visible to run them); one step at a time: float32, float64, bfloat16, float16")


def test_extension_missing(monkeypatch, capsys):
    monkeypatch.setattr(ops, "KERNELS_LOADED", False)
    monkeypatch.setattr(ops, "LOAD_ERROR", ImportError("undefined symbol: planted"))
    monkeypatch.setattr(ops, "_CUDA_KERNELS", False)
    assert cli.main() == 1
    lines = capsys.readouterr().out.splitlines()
    assert "NOT loaded (undefined symbol: planted)" in _line(lines, "compiled extension: ")
    assert _line(lines, "compiled backends: ") == "compiled backends: none"
    assert _line(lines, "dtypes with a kernel on cpu: ").startswith("dtypes with a kernel on cpu: none (extension not loaded")
