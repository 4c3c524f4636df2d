"""The CPU kernels compile for aarch64 through the same SIMD layer, to NEON (checked with a cross
compiler when one is installed: .ci/run installs Debian's g++-aarch64-linux-gnu)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch.utils.cpp_extension as cpp_extension

ROOT = Path(__file__).resolve().parents[1]
CROSS = "aarch64-linux-gnu-g++"
OBJDUMP = "aarch64-linux-gnu-objdump"


@pytest.mark.skipif(shutil.which(CROSS) is None or shutil.which(OBJDUMP) is None,
                    reason=f"no aarch64 cross compiler ({CROSS})")
def test_baseline_kernels_compile_to_neon(tmp_path):
    includes = [f"-I{cpp_extension.include_paths()[0]}", f"-I{ROOT / 'csrc'}"]
    objects = {}
    for name in ("kernels_baseline", "kernels_avx2", "kernels_avx512", "isa_dispatch"):
        objects[name] = tmp_path / f"{name}.o"
        done = subprocess.run([CROSS, "-std=c++20", "-O3", *includes, "-c", str(ROOT / "csrc" / "cpu" / f"{name}.cpp"),
                               "-o", str(objects[name])], capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    listing = subprocess.run([OBJDUMP, "-d", str(objects["kernels_baseline"])], capture_output=True, text=True,
                             check=True).stdout
    # The micro-kernel's multiply-adds and tanh's division on four-lane NEON vectors.
    assert len(re.findall(r"\bfmla\s+v\d+\.4s", listing)) > 100
    assert re.search(r"\bfdiv\s+v\d+\.4s", listing)
    # The x86 sets compile to nothing there; the dispatch needs only the baseline.
    symbols = subprocess.run(["aarch64-linux-gnu-nm", "-C", str(objects["isa_dispatch"])], capture_output=True,
                             text=True, check=True).stdout
    assert "cwrnn::baseline::run_forward_recurrence" in symbols
    assert "cwrnn::avx2::" not in symbols and "cwrnn::avx512::" not in symbols
