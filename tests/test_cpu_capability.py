"""The CPU kernels per instruction set: the set follows torch's capability (ATEN_CPU_CAPABILITY),
every set this machine has passes the kernel tests, and no set's hot loops keep vectors on the stack.

The main run tests the set torch picks natively; the lower sets run the kernel, schedule and step
tests again in a subprocess with ATEN_CPU_CAPABILITY forced, as PyTorch's own CI does for ATen.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import cwrnn_ext
from cwrnn_ext import ops

pytestmark = pytest.mark.skipif(not ops.KERNELS_LOADED, reason="compiled extension not loaded")

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER = ["DEFAULT", "AVX2", "AVX512"]  # lowest first, as torch names them
# The tests of every path that the per-set kernels run: sequence schedules, the step op, dtypes.
KERNEL_TESTS = ["test_kernel_vs_reference.py", "test_cpu_schedule.py", "test_step.py",
                "test_half_cpu.py", "test_kernel_cases.py"]


def _run(code, capability):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), ATEN_CPU_CAPABILITY=capability)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=HERE, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _native():
    """The highest set torch would pick on this machine, read without any override."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


NATIVE = _native() if ops.KERNELS_LOADED else "DEFAULT"
LOWER = ORDER[:ORDER.index(NATIVE)] if NATIVE in ORDER else []


def test_in_process_set_is_torchs():
    # The kernels take the set torch uses (never above it), and one this machine has.
    assert cwrnn_ext.cpu_capability() in ORDER
    torch_capability = torch.backends.cpu.get_cpu_capability()
    if torch_capability in ORDER:
        assert ORDER.index(cwrnn_ext.cpu_capability()) <= ORDER.index(torch_capability)
    else:  # a set this build has no kernels for (e.g. SVE256): the baseline
        assert cwrnn_ext.cpu_capability() == "DEFAULT"


@pytest.mark.parametrize("forced", ["default", "avx2", "avx512"])
def test_override_is_followed(forced):
    code = "import torch, cwrnn_ext; print(cwrnn_ext.cpu_capability(), torch.backends.cpu.get_cpu_capability())"
    ours, torchs = _run(code, forced).split()
    if NATIVE in ORDER and ORDER.index(forced.upper()) <= ORDER.index(NATIVE):
        assert ours == forced.upper()  # lowered (or kept) exactly as ATen's kernels are
    else:
        assert ORDER.index(ours) <= ORDER.index(NATIVE)  # never above what the CPU has
    if torchs in ORDER:
        assert ORDER.index(ours) <= ORDER.index(torchs)


def test_cli_names_the_set():
    from cwrnn_ext import __main__ as cli
    line = [line for line in cli.report() if line.startswith("CPU kernels: ")]
    assert line == [line[0]] and line[0].startswith(f"CPU kernels: {cwrnn_ext.cpu_capability()} ")


def test_sets_agree_on_one_forward():
    # The same float64 computation in every set: equal to rounding (float64 tanh is libm's in each).
    code = (
        "import torch, cwrnn_ext\n"
        "torch.manual_seed(0)\n"
        "m = cwrnn_ext.ClockworkRNN(7, 45, periods=[1, 2, 3, 8], module_sizes=[16, 13, 9, 7], dtype=torch.float64)\n"
        "x = torch.randn(300, 5, 7, dtype=torch.float64)\n"
        "out, h = m(x)\n"
        "print(repr(out.sum().item()), repr(out.abs().sum().item()))\n")
    results = {c: [float(v) for v in _run(code, c.lower()).split()] for c in ORDER[:ORDER.index(NATIVE) + 1]}
    first = next(iter(results.values()))
    for capability, values in results.items():
        assert values == pytest.approx(first, rel=1e-12, abs=1e-9), capability


# Left out of the reruns: torch.compile (under a forced capability this torch's inductor emits C++
# that does not compile (DEFAULT) or reuses kernels cached for another set: torch's code, not these
# kernels; the main run tests compile at the native set); the process-memory test (not about a set,
# and ASan's quarantine defeats it); and what does not reach a kernel's arithmetic (opcheck's
# registration checks, argument checks, the ATen composite).
NOT_PER_SET = "not compile and not memory_is_flat and not opcheck and not bad and not composite"


def test_kernel_tests_under_each_lower_set():
    """The kernel tests again under every set below this machine's, the sets in parallel (one
    pytest process each)."""
    if not LOWER:
        pytest.skip(f"no set below this machine's {NATIVE}: the main run tests it")
    files = [os.path.join(HERE, f) for f in KERNEL_TESTS]
    runs = {}
    for capability in LOWER:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), ATEN_CPU_CAPABILITY=capability.lower())
        runs[capability] = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", NOT_PER_SET, *files],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=HERE)
    for capability, run in runs.items():
        stdout, stderr = run.communicate(timeout=1800)
        assert run.returncode == 0, f"{capability}:\n" + stdout[-4000:] + stderr[-2000:]
        assert re.search(r"\d+ passed", stdout), stdout[-2000:]


# --- the spill guard -------------------------------------------------------------------------
# A vector that does not fit a register lives on the stack: every multiply-add then loads and
# stores it. Counted statically, per set, over the kernels' entry points (everything hot is inlined
# into them): packed instructions (whole vectors, not the scalar ss/sd of a ragged column) that
# move or use an xmm/ymm/zmm register to or from the stack frame.
SET_NAMESPACES = {"DEFAULT": "baseline", "AVX2": "avx2", "AVX512": "avx512"}
HOT = ["run_forward_recurrence", "run_backward_recurrence", "fill_held_rows", "step_group_rows"]
# With every vector in registers the recurrences make 20-70 such moves (values saved around calls)
# and the step kernel up to about 200 (tanh's constants hoisted out of its loop, ragged columns);
# 64-byte vectors on AVX2 or SSE2, which have no register for them, made thousands (6,642 in one
# forward). The bound sits between.
MAX_STACK_VECTOR_MOVES = 256
STACK_VECTOR_MOVE = re.compile(r"^\S*(ps|pd|dq[au]|dq[au](8|16|32|64))\s+(\S*%[xyz]mm\d+\S*\(%r[sb]p\)|\S*\(%r[sb]p\)\S*%[xyz]mm\d+)")


def _functions(library):
    listing = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", library], capture_output=True,
                             text=True, check=True).stdout
    functions, name = {}, None
    for line in listing.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if header:
            name = header.group(1)
            functions[name] = []
        elif name is not None and "\t" in line:
            functions[name].append(line.split("\t", 1)[1])
    return functions


@pytest.fixture(scope="module")
def disassembly():
    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) not installed")
    library = ops._C.__file__
    return _functions(library)


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
                    reason="the per-set x86-64 kernels exist on Linux x86-64 builds")
@pytest.mark.parametrize("capability", ORDER)
def test_no_spill_cliff(disassembly, capability):
    namespace = f"cwrnn::{SET_NAMESPACES[capability]}::"
    for entry in HOT:
        bodies = {name: body for name, body in disassembly.items() if name.startswith(namespace + entry + "(")}
        assert bodies, f"{namespace}{entry} not found in the build"
        for name, body in bodies.items():
            moves = sum(1 for instruction in body if STACK_VECTOR_MOVE.search(instruction))
            assert moves <= MAX_STACK_VECTOR_MOVES, f"{name}: {moves} vector moves to or from the stack"


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
                    reason="the per-set x86-64 kernels exist on Linux x86-64 builds")
@pytest.mark.parametrize("capability,register", [("DEFAULT", "xmm"), ("AVX2", "ymm"), ("AVX512", "zmm")])
def test_tanh_runs_at_full_width(disassembly, capability, register):
    # tanh's division, at the set's full vector width, in the float forward: the nonlinearity is
    # vectorised in every set (the scalar form was 14% of an AVX2 forward).
    name = f"cwrnn::{SET_NAMESPACES[capability]}::run_forward_recurrence(cwrnn::ForwardRecurrence<float, float> const&, long, long)"
    body = disassembly.get(name)
    assert body is not None, f"{name} not found"
    assert any(re.search(rf"v?divps\s.*%{register}", instruction) for instruction in body), name
