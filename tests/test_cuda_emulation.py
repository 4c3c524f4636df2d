"""The CUDA recurrence kernels' source, run on the CPU against the plain reference recurrences
(csrc/generic/plain_recurrence.h; tests/cuda_emulation: each CUDA thread a fiber, switching at __syncthreads and shuffles to a random
other one, the blocks of a launch on concurrent OS threads). Needs no GPU: it checks the kernels'
indexing, semantics, barriers and shuffles at production block sizes wherever a C++20 compiler is
available. What only a GPU can show is in test_cuda.py and benchmarks/gpu/cuda_check.sh.

Three builds, compiled at once: the emulator; the same with the end-of-tick barriers removed from
the kernel source (it must fail: the emulation can catch a missing barrier); and a
ThreadSanitizer build, where every access that no barrier orders is a reported race.

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
KERNELS = Path("cuda") / "recurrence_kernels.cuh"
# The barrier that ends a forward tick and a backward step (each one line of the kernel source).
END_OF_TICK_BARRIERS = ["    __syncthreads();  // the end of the tick", "    __syncthreads();  // the end of the step"]


def _command(csrc: Path, binary: Path, *flags: str) -> list:
    includes = [f"-I{cpp_extension.include_paths()[0]}", f"-I{csrc}"]
    return [CXX, "-std=c++20", "-pthread", "-fno-strict-aliasing", "-Wall", "-Wno-unknown-pragmas", *flags,
            *includes, str(ROOT / "tests" / "cuda_emulation" / "emulate_kernels.cpp"), "-o", str(binary)]


def _without_end_of_tick_barriers(directory: Path) -> Path:
    """A copy of csrc with the end-of-tick barriers removed."""
    csrc = directory / "csrc"
    shutil.copytree(ROOT / "csrc", csrc)
    source = (csrc / KERNELS).read_text()
    for line in END_OF_TICK_BARRIERS:
        assert source.count(line) == 1, f"the kernel source no longer has {line.strip()!r}"
        source = source.replace(line, "    // (barrier removed)")
    (csrc / KERNELS).write_text(source)
    return csrc


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """name -> path of the binary, or the reason it could not be built."""
    if shutil.which(CXX) is None:
        pytest.skip(f"no C++ compiler ({CXX})")
    directory = tmp_path_factory.mktemp("emulation")
    float32_only = ["-DCWRNN_EMULATE_FLOAT32_ONLY"]
    jobs = {
        "emulator": _command(ROOT / "csrc", directory / "emulator", "-O2"),
        "no_barrier": _command(_without_end_of_tick_barriers(directory), directory / "no_barrier", "-O2",
                               *float32_only),
        "tsan": _command(ROOT / "csrc", directory / "tsan", "-O1", "-g", "-fsanitize=thread", *float32_only),
    }
    running = {name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for name, command in jobs.items()}
    results = {}
    for name, process in running.items():
        output = process.communicate()[0]
        results[name] = directory / name if process.returncode == 0 else output
    if not isinstance(results["emulator"], Path):
        pytest.fail(f"emulator did not compile:\n{results['emulator'][-4000:]}")
    return results


def _run(binary: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    # Without the parent's LD_PRELOAD: under .ci/sanitize it preloads ASan into python, and a
    # ThreadSanitizer binary with ASan's runtime loaded crashes at start-up.
    env = {name: value for name, value in os.environ.items() if name != "LD_PRELOAD"}
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout, env=env)


def _covered(stdout: str) -> dict:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"covered: (.+): (\d+)", stdout)}


def test_kernels_match_plain_recurrences(builds):
    cases = os.environ.get("CWRNN_EMULATION_CASES", "40")
    result = _run(builds["emulator"], cases, "1")
    assert result.returncode == 0 and result.stdout.rstrip().endswith("OK"), result.stdout[-4000:]
    # Every kernel variant, path and boundary ran: W_ii's placements, more than one pass, more than
    # one row per block, addends and sums past the register slots, 512-thread blocks, every split
    # the production shapes use, shared memory exactly at the limit, first ticks that overflow an int.
    covered = _covered(result.stdout)
    for what in ("W small in registers", "W big in registers", "W big in registers + shared", "W in shared",
                 "W in global", "several passes", "several rows per block", "addends past the slots",
                 "sums past the slots", "sums added at once (several passes)", "512-thread blocks",
                 "256-thread blocks of the big kernels",
                 "split 1", "split 2", "split 4", "shared memory exactly at the limit",
                 "a first tick past 2^31"):
        assert covered.get(what, 0) > 0, f"no case covered {what!r}:\n{result.stdout[-3000:]}"


def test_removed_end_of_tick_barrier_is_caught(builds):
    """The fibers switch only at barriers and shuffles, so without the barrier that ends a tick a
    thread reads state its peers have not written yet: forward and backward both fail."""
    if not isinstance(builds["no_barrier"], Path):
        pytest.fail(f"the mutated emulator did not compile:\n{builds['no_barrier'][-4000:]}")
    result = _run(builds["no_barrier"], "10", "1")
    assert result.returncode != 0, result.stdout[-3000:]
    counts = re.search(r"float32 +\d+ cases, \d+ mismatches \(forward (\d+), backward (\d+)\)", result.stdout)
    assert counts is not None, result.stdout[-3000:]
    assert int(counts.group(1)) > 0 and int(counts.group(2)) > 0, result.stdout[-3000:]


def test_thread_sanitizer_finds_no_race(builds):
    """Production block sizes over a few rows and ticks (ThreadSanitizer is slow), then random cases."""
    if not isinstance(builds["tsan"], Path):
        if "tsan" in builds["tsan"].lower() or "sanitize" in builds["tsan"].lower():
            pytest.skip("the compiler cannot build with -fsanitize=thread")
        pytest.fail(f"the ThreadSanitizer build failed:\n{builds['tsan'][-4000:]}")
    result = _run(builds["tsan"], "4", "1", "small")
    report = result.stdout + result.stderr
    if "FATAL: ThreadSanitizer" in report and "memory layout" in report:
        pytest.skip("ThreadSanitizer cannot run here (memory layout / ASLR)")
    first = report.find("WARNING: ThreadSanitizer")
    assert first < 0, report[first:first + 6000]
    assert result.returncode == 0 and result.stdout.rstrip().endswith("OK"), report[-4000:]
    covered = _covered(result.stdout)
    for what in ("512-thread blocks", "256-thread blocks of the big kernels"):  # the production sizes
        assert covered.get(what, 0) > 0, result.stdout[-3000:]
