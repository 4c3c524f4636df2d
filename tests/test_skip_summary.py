"""The suite ends with one line that groups the skips by reason (tests/conftest.py)."""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_skips_are_summarised_by_reason_in_one_line(tmp_path):
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_planted.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.skipif(True, reason="needs a GPU")
        @pytest.mark.parametrize("i", range(3))
        def test_gpu(i):
            pass

        def test_compiler():
            pytest.skip("no C++ compiler")

        def test_runs():
            pass
    """))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_planted.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 skipped: needs a GPU (3), no C++ compiler (1)" in done.stdout.splitlines(), done.stdout
