"""Every Python snippet in README.md runs as written (on the CPU) and its asserts hold."""
import re
import warnings
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_readme_has_python_snippets():
    assert BLOCKS, "README.md has no ```python blocks (did the fence change?)"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_snippet_runs(index):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # e.g. a silent fallback to the reference
        exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {"__name__": "readme"})
