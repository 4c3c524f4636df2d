"""The experiments' command lines: `python -m experiments.<name>` in the usage line, help and a
default for every option, run time and output place in the description, and outputs in an ignored
folder unless the committed results are asked for explicitly."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `pytest tests` (not `python -m pytest`) does not add the repo root
    sys.path.insert(0, str(ROOT))

from experiments import make_spoken_words, sequence_generation, spoken_words  # noqa: E402
from experiments.common import OUT_DIR, RESULTS_DIR  # noqa: E402

EXPERIMENTS = {"sequence_generation": sequence_generation, "spoken_words": spoken_words}
ALL = dict(EXPERIMENTS, make_spoken_words=make_spoken_words)


@pytest.mark.parametrize("name", sorted(ALL))
def test_help_names_the_module_and_explains_every_option(name):
    parser = ALL[name].build_parser()
    assert parser.prog == f"python -m experiments.{name}"
    text = parser.format_help()
    assert text.startswith(f"usage: python -m experiments.{name} ")
    assert "Run time" in text and "experiments/out/" in text and "ignored by git" in text
    for action in parser._actions:
        assert action.help, f"{name}: {action.option_strings} has no help"
        takes_value = action.nargs != 0  # not -h or a flag
        if action.option_strings and takes_value:
            assert "(default" in parser._get_formatter()._get_help_string(action), \
                f"{name}: {action.option_strings} does not show its default"


@pytest.mark.parametrize("name", sorted(ALL))
def test_help_runs_from_the_command_line(name):
    done = subprocess.run([sys.executable, "-m", f"experiments.{name}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m experiments.{name} ")


def _out(name, argv):
    module = EXPERIMENTS[name]
    parsed = module.parse_args(argv)
    return Path(parsed[1] if isinstance(parsed, tuple) else parsed.out)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_results_are_committed_only_on_request(name, tmp_path):
    assert _out(name, []) == OUT_DIR
    assert _out(name, ["--out", str(tmp_path)]) == tmp_path
    assert _out(name, ["--update-results"]) == RESULTS_DIR
    with pytest.raises(SystemExit):
        _out(name, ["--update-results", "--out", str(tmp_path)])


def test_data_is_rewritten_only_on_request(tmp_path):
    assert Path(make_spoken_words.parse_args([]).out) == OUT_DIR / "spoken_words.npz"
    assert Path(make_spoken_words.parse_args(["--update-data"]).out) == Path(spoken_words.DATA)
    assert make_spoken_words.parse_args(["--out", str(tmp_path / "x.npz")]).out == str(tmp_path / "x.npz")


def test_default_output_folder_is_ignored_by_git():
    assert OUT_DIR == ROOT / "experiments" / "out"
    assert "/out/" in (ROOT / "experiments" / ".gitignore").read_text().split()
    if shutil.which("git") and (ROOT / ".git").exists():
        for path in ("experiments/out/sequence_generation.json", "experiments/out/spoken_words.npz",
                     "experiments/results/spoken_words.json"):
            ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0
            assert ignored == path.startswith("experiments/out/"), path
