import collections
import importlib.util

import pytest
import torch


def pytest_addoption(parser):
    # The suite is run as `pytest -n0` in CI scripts; accept (and ignore) -n when pytest-xdist
    # is not installed, so the same command line works everywhere.
    if importlib.util.find_spec("xdist") is None:
        group = parser.getgroup("xdist-fallback")
        # _addoption, as pytest-xdist itself does: lowercase short options are reserved.
        group._addoption("-n", "--numprocesses", dest="numprocesses", action="store", default=None,
                         help="ignored: pytest-xdist is not installed")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a few seconds or more (torch.compile)")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(params=["time_major", "module_major"])
def forward_path(request):
    """Runs the test once with every CPU forward forced onto each path (the rule would pick one by
    shape, so a test of small shapes would otherwise see only time-major); yields the path."""
    from cwrnn_ext import ops
    if not ops.KERNELS_LOADED:
        pytest.skip("needs the compiled kernels")
    with ops.forced_forward_path(request.param):
        yield request.param


@pytest.fixture
def module_major_path():
    """Every CPU forward of the test forced onto module-major (its pipelined variant included), for
    tests of that schedule's own machinery (threads, workspace, pool, pipeline)."""
    from cwrnn_ext import ops
    if not ops.KERNELS_LOADED:
        yield
        return
    with ops.forced_forward_path("module_major"):
        yield


@pytest.fixture
def threads_for_any_work():
    """Lets even tiny CPU calls use every intra-op thread (the work threshold at 0), so that tests
    of the threaded schedules reach them on small problems; restored afterwards."""
    from cwrnn_ext import ops
    if not ops.KERNELS_LOADED:
        yield
        return
    previous = ops._C.set_min_parallel_macs(0)
    try:
        yield
    finally:
        ops._C.set_min_parallel_macs(previous)


def skip_reason(report) -> str:
    """The reason a test was skipped, as its skip call or marker gave it."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ").strip() or "no reason given"


def pytest_terminal_summary(terminalreporter):
    """One line with the skips grouped by reason, most frequent first, e.g. "271 skipped: needs a
    GPU (240), ...": pytest alone prints only the count unless run with -rs."""
    reports = terminalreporter.stats.get("skipped", [])
    if reports:
        counts = collections.Counter(skip_reason(report) for report in reports)
        reasons = ", ".join(f"{reason} ({count})" for reason, count in counts.most_common())
        terminalreporter.write_line(f"{len(reports)} skipped: {reasons}")
