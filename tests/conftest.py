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
