"""setup.py's choice of kernels (CWRNN_BUILD_CUDA and its older spellings), read through
`setup.py --version`: the version's local label names what the build makes (+cpu or +cuda) and a
request that cannot be met stops the build with a message that says why. Nothing is compiled."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SWITCHES = ("CWRNN_BUILD_CUDA", "CWRNN_REQUIRE_CUDA_BUILD", "CWRNN_FORCE_CPU", "CUDA_HOME")
CUDA_HOME = os.environ.get("CUDA_HOME", "/usr/local/cuda")
CUDA_BUILDABLE = torch.version.cuda is not None and (Path(CUDA_HOME) / "bin" / "nvcc").exists()

# environment -> the version it gives, or the words its error message must contain
CASES = {
    "force-cpu": ({"CWRNN_FORCE_CPU": "1"}, "0.1.0+cpu"),
    "build-cuda-0": ({"CWRNN_BUILD_CUDA": "0"}, "0.1.0+cpu"),
    "auto": ({}, "0.1.0+cuda" if CUDA_BUILDABLE and torch.cuda.is_available() else "0.1.0+cpu"),
    "build-cuda-1": ({"CWRNN_BUILD_CUDA": "1"},
                     "0.1.0+cuda" if CUDA_BUILDABLE else ["asked for", "cannot be built"]),
    "require-without-nvcc": ({"CWRNN_REQUIRE_CUDA_BUILD": "1", "CUDA_HOME": "/nonexistent"},
                             ["cannot be built", "/nonexistent/bin/nvcc"]),
    "contradiction": ({"CWRNN_REQUIRE_CUDA_BUILD": "1", "CWRNN_FORCE_CPU": "1"}, ["both", "against"]),
    "bad-value": ({"CWRNN_BUILD_CUDA": "yes"}, ["CWRNN_BUILD_CUDA must be 1, 0 or auto", "'yes'"]),
}


@pytest.fixture(scope="module")
def outcomes():
    """Every case at once (each is a python that imports torch)."""
    base = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    base["CUDA_HOME"] = CUDA_HOME
    running = {name: subprocess.Popen([sys.executable, "setup.py", "--version"], cwd=ROOT,
                                      env={**base, **extra}, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
               for name, (extra, _) in CASES.items()}
    outputs = {name: process.communicate(timeout=300) for name, process in running.items()}
    return {name: (running[name].returncode, *outputs[name]) for name in CASES}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_switch(outcomes, name):
    status, stdout, stderr = outcomes[name]
    expected = CASES[name][1]
    if isinstance(expected, str):
        assert status == 0, stderr
        assert stdout.strip().splitlines()[-1] == expected, stdout
    else:
        assert status != 0, stdout
        message = stderr.strip().splitlines()[-1]
        assert message.startswith("cwrnn_ext: ") and all(words in message for words in expected), stderr
