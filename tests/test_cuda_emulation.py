"""The CUDA recurrence kernels' source, run on the CPU (one std::thread per CUDA thread, a
std::barrier for __syncthreads) against the CPU recurrences, over random problems and every
kernel variant. Needs no GPU: it checks the kernels' indexing and semantics wherever a C++20
compiler is available. What only a GPU can show is in test_cuda.py and benchmarks/cuda_check.sh.

CWRNN_EMULATION_CASES (default 40) sets the number of random problems per dtype.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch.utils.cpp_extension as cpp_extension

ROOT = Path(__file__).resolve().parents[1]
CXX = os.environ.get("CXX", "g++")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if shutil.which(CXX) is None:
        pytest.skip(f"no C++ compiler ({CXX})")
    binary = tmp_path_factory.mktemp("emulation") / "emulate_kernels"
    includes = [f"-I{path}" for path in cpp_extension.include_paths()[:1]] + [f"-I{ROOT / 'csrc'}"]
    command = [CXX, "-std=c++20", "-O2", "-pthread", "-Wall", "-Wno-unknown-pragmas",
               # a small block, so that groups of a few dozen units already take the column loop
               "-DCWRNN_CUDA_MAX_THREADS=64", *includes,
               str(ROOT / "tests" / "cuda_emulation" / "emulate_kernels.cpp"),
               str(ROOT / "csrc" / "cpu" / "recurrence.cpp"), "-o", str(binary)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 and "barrier" in result.stderr and "No such file" in result.stderr:
        pytest.skip("the C++ compiler lacks C++20 <barrier>")
    assert result.returncode == 0, f"emulator did not compile:\n{result.stderr[-4000:]}"
    return binary


def test_kernels_match_cpu_recurrences(emulator):
    cases = os.environ.get("CWRNN_EMULATION_CASES", "40")
    result = subprocess.run([str(emulator), cases, "1"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0 and result.stdout.rstrip().endswith("OK"), result.stdout[-4000:]
    # every kernel variant (rows per thread 1/4, W_ii resident or not) and the column loop ran
    counts = re.search(r"1,yes (\d+)\s+1,no (\d+)\s+4,yes (\d+)\s+4,no (\d+); column loop (\d+)", result.stdout)
    assert counts is not None, result.stdout
    assert all(int(n) > 0 for n in counts.groups()), result.stdout
