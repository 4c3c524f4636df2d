"""The repository stands alone: no text file points outside it, every relative Markdown link (and
its #section) resolves, and every repository path named in a text file (docs, docstrings,
comments) exists."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".md", ".py", ".cpp", ".h", ".cu", ".cuh", ".sh", ".txt", ".cfg", ".toml", ".yml",
                 ".yaml", ".gitignore", ""}
# Notes that live outside the repository; spelled in pieces so that this file does not match itself.
OUTSIDE = re.compile("|".join([r"\.\./" + "shared", "/work/" + "shared", r"\b(?:SPEC|DESIGN|PAPER)\.md",
                               r"\b(?:SPEC|DESIGN)" + r" section", r"\bDESIGN" + r" note"]))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# `top-level-folder/...`, at the start of a word: a file or folder of this repository. `{a,b}`,
# `*` and `<placeholder>` are read as the docs use them.
TOP_LEVEL = ("benchmarks", "csrc", "cwrnn_ext", "docs", "experiments", "tests", ".ci")
REPO_PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./{},*<>-]*[\w}>*/])" % "|".join(re.escape(t) for t in TOP_LEVEL))


def repository_files():
    """Tracked files plus new ones git would track (ignored outputs are not part of the repo)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=ROOT, capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs a git checkout to tell repository files from build outputs")
    return sorted({ROOT / name for name in listed.split("\0") if name and (ROOT / name).is_file()})


def text_files():
    for path in repository_files():
        if path.suffix in TEXT_SUFFIXES:
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # binary


def github_anchor(heading: str) -> str:
    """The #fragment GitHub gives a Markdown heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors_of(markdown: Path) -> set:
    headings = re.findall(r"^#{1,6}\s+(.*)$", markdown.read_text(encoding="utf-8"), flags=re.M)
    return {github_anchor(h) for h in headings}


def expand(pattern: str):
    """`a/{x,y}.json` -> a/x.json, a/y.json (one level of braces, as the docs write them)."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    return [pattern[:match.start()] + option + pattern[match.end():] for option in match.group(1).split(",")]


def is_ignored(relative: str) -> bool:
    """Output folders named in the docs (e.g. experiments/out/) exist only after a run. A folder
    named without its trailing slash matches a `folder/` pattern only once it exists, so both."""
    return any(subprocess.run(["git", "check-ignore", "-q", "--no-index", name], cwd=ROOT).returncode == 0
               for name in (relative, relative.rstrip("/") + "/"))


def markdown_link_problems(path: Path, text: str):
    problems = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if ROOT not in resolved.parents and resolved != ROOT:
            problems.append(f"{target} leaves the repository")
        elif not resolved.exists():
            problems.append(f"{target} does not exist")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors_of(resolved):
            problems.append(f"{target}: no heading with anchor #{fragment} in {resolved.name}")
    return problems


def path_problems(text: str):
    problems = []
    for name in REPO_PATH.findall(text):
        for candidate in expand(name):
            if any(ch in candidate for ch in "*<>"):  # a glob or a placeholder: some file must match
                pattern = re.sub(r"<[^>]*>", "*", candidate)
                if not list(ROOT.glob(pattern)) and not is_ignored(candidate):
                    problems.append(f"`{name}` matches no file")
            elif not (ROOT / candidate).exists() and not is_ignored(candidate):
                problems.append(f"`{name}` does not exist")
    return problems


def test_nothing_points_outside_the_repository():
    found = []
    for path, text in text_files():
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "references to notes outside the repository:\n" + "\n".join(found)


def test_markdown_links_resolve():
    found = []
    for path, text in text_files():
        if path.suffix == ".md":
            found += [f"{path.relative_to(ROOT)}: {p}" for p in markdown_link_problems(path, text)]
    assert not found, "broken links:\n" + "\n".join(found)


def test_paths_named_in_text_exist():
    found = []
    for path, text in text_files():
        found += [f"{path.relative_to(ROOT)}: {p}" for p in path_problems(text)]
    assert not found, "file names that do not exist:\n" + "\n".join(found)


def test_the_checks_can_fail(tmp_path):
    """Each check rejects a planted mistake (so a passing run above means something)."""
    page = ROOT / "docs" / "planted.md"  # never written: the checks take the text directly
    assert markdown_link_problems(page, "[x](missing.md)") == ["missing.md does not exist"]
    assert markdown_link_problems(page, "[x](../../outside.md)") == ["../../outside.md leaves the repository"]
    assert markdown_link_problems(page, "[x](contract.md#no-such-heading)")
    assert markdown_link_problems(page, "[x](contract.md#bad-input)") == []
    assert path_problems("pip install -r benchmarks/" + "requirements.txt")
    assert path_problems("see `benchmarks/results/quick_cpu.{json,csv}`, csrc/cpu/*.cpp") == []
    assert path_problems("the output goes to experiments/out/x.json (ignored)") == []
    assert path_problems("outputs go to benchmarks/out, which git ignores") == []
    assert OUTSIDE.search("details in " + "../" + "shared/" + "DESIGN" + ".md")
    assert OUTSIDE.search("as " + "SPEC" + " section 3 says")
