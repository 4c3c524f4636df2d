"""Without its compiled kernels the package says so, with the command that builds them, instead of
Python's misleading "cannot import name '_C' ... (most likely due to a circular import)"."""
import os
import shutil
import subprocess
import sys

import cwrnn_ext
from cwrnn_ext import ops

PACKAGE = os.path.dirname(os.path.abspath(cwrnn_ext.__file__))
BUILD_COMMAND = "python3 -m pip install --no-build-isolation --no-deps -e ."

# Imports the copy, calls a layer (which falls back to the reference), prints what it saw.
# An editable install of the repository leaves a finder on sys.meta_path that maps any
# `cwrnn_ext.<child>` the copy lacks (here `_C`) to the repository's build; the copy stands for a
# checkout that was never built, so that finder goes first.
WITHOUT_EDITABLE_FINDER = """
import sys
sys.meta_path = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
"""
PROBE = WITHOUT_EDITABLE_FINDER + """
import warnings, torch, cwrnn_ext
from cwrnn_ext import ops
print("file", cwrnn_ext.__file__)
print("error", type(ops.LOAD_ERROR).__name__, ops.LOAD_ERROR)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    cwrnn_ext.ClockworkRNN(3, 4, num_modules=2)(torch.randn(2, 5, 3))
print("warning", " | ".join(str(w.message) for w in caught))
"""


def _package_copy(tmp_path, extension=None):
    """The package's Python files in tmp_path/cwrnn_ext, plus `extension` as its _C if given."""
    shutil.copytree(PACKAGE, tmp_path / "cwrnn_ext", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    if extension is not None:
        (tmp_path / "cwrnn_ext" / "_C.abi3.so").write_bytes(extension)
    return tmp_path


def _run(root, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(root)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=root, env=env,
                          timeout=300)


def _lines(stdout, prefix):
    return [line[len(prefix):] for line in stdout.splitlines() if line.startswith(prefix)]


def test_not_built_names_the_command(tmp_path):
    root = _package_copy(tmp_path)
    done = _run(root, "-c", PROBE)
    assert done.returncode == 0, done.stderr
    assert _lines(done.stdout, "file ") == [str(root / "cwrnn_ext" / "__init__.py")]
    assert _lines(done.stdout, "error ") == [f"ImportError {ops.NOT_BUILT}"]
    assert BUILD_COMMAND in ops.NOT_BUILT and "not built" in ops.NOT_BUILT
    [warning] = _lines(done.stdout, "warning ")
    assert ops.NOT_BUILT in warning and "circular" not in warning, warning

    # python -m cwrnn_ext, after the same finder is gone
    report = _run(root, "-c", WITHOUT_EDITABLE_FINDER + "import runpy; runpy.run_module('cwrnn_ext', run_name='__main__')")
    assert report.returncode == 1, report.stderr
    [extension] = _lines(report.stdout, "compiled extension: ")
    assert extension.startswith(f"NOT loaded ({ops.NOT_BUILT})"), extension


def test_broken_build_keeps_its_own_error(tmp_path):
    """A _C that exists but does not load is not 'not built': its loader error is the news."""
    root = _package_copy(tmp_path, extension=b"not an ELF file")
    done = _run(root, "-c", PROBE)
    assert done.returncode == 0, done.stderr
    [error] = _lines(done.stdout, "error ")
    assert error.startswith("ImportError ") and "not built" not in error, error
    assert "_C.abi3.so" in error, error
