"""The settings read from CWRNN_* environment variables (csrc/cpu/settings.h) and the memory the CPU
kernels keep between calls, read through cwrnn_ext.memory_stats() and freed by empty_cache().

Settings are read once per process, so the tests that set them run a fresh Python process."""
import json
import os
import subprocess
import sys

import pytest
import torch

import cwrnn_ext
from helpers import make_problem, run_in_threads

MIB = 1 << 20
KEYS = {"pool.cached_bytes", "pool.peak_cached_bytes", "pool.limit_bytes", "pool.live_bytes", "pool.hits",
        "pool.misses", "workspace.cached_bytes", "workspace.peak_cached_bytes", "workspace.limit_bytes",
        "workspace.active_bytes", "workspace.hits", "workspace.misses"}
forward_op = torch.ops.cwrnn_ext.forward
backward_op = torch.ops.cwrnn_ext.backward

# Sizes in MiB take only a whole number written in decimal digits; flags take 0 or 1.
BAD_SIZES = ["-1", "abc", "1e3", "99999999999999999999", "8796093022208", "", " 64", "64 ", "+64", "64MB", "0x10"]
BAD_FLAGS = ["2", "-1", "yes", "true", "", " 1", "1 ", "01"]
SETTINGS = {"CWRNN_OUTPUT_CACHE_MB": BAD_SIZES, "CWRNN_WORKSPACE_CACHE_MB": BAD_SIZES,
            "CWRNN_HUGE_PAGES": BAD_FLAGS}


def environment(**settings):
    """This process's environment with no CWRNN_* variable but `settings`, for a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CWRNN_")}
    return dict(env, PYTHONPATH=os.pathsep.join(sys.path), **settings)


def run_python(script, **settings):
    """Runs `script` in a fresh process with these CWRNN_* settings; returns its stdout."""
    env = environment(**settings)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# Imported with the first bad value set (import must not fail); then every call refuses each bad
# value (a failed parse is retried on the next use, which reads the variable again). Last, a good
# value is accepted and from then on fixed: changing the variable afterwards changes nothing.
REFUSAL_SCRIPT = """
import json, os, sys, torch, cwrnn_ext
name, bad, good = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
x = torch.randn(8, 4, 3); hx = torch.zeros(4, 16); w_ih = torch.randn(16, 3); w_hh = torch.randn(16, 16)
calls = {
    "forward": lambda: torch.ops.cwrnn_ext.forward(x, hx, w_ih, w_hh, None, [1, 2], [8, 8], 0, "tanh", None),
    "step": lambda: torch.ops.cwrnn_ext.step(x[0], hx, w_ih, w_hh, None, None, [1, 2], [8, 8], 0, None, "tanh"),
    "memory_stats": cwrnn_ext.memory_stats,
}
report = {}
for value in bad:
    os.environ[name] = value
    for call_name, call in calls.items():
        try:
            call()
            report[f"{value!r} {call_name}"] = None
        except RuntimeError as error:
            report[f"{value!r} {call_name}"] = str(error)
os.environ[name] = good
stats = cwrnn_ext.memory_stats()
calls["forward"](); calls["step"]()
os.environ[name] = "abc"
report["after good"] = (stats, cwrnn_ext.memory_stats(), calls["forward"]()[0].shape[0])
print(json.dumps(report))
"""


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_bad_values_are_refused_with_the_variable_named(name):
    bad = SETTINGS[name]
    good = "1" if name == "CWRNN_HUGE_PAGES" else "3"
    env = environment(**{name: bad[0]})
    result = subprocess.run([sys.executable, "-c", REFUSAL_SCRIPT, name, json.dumps(bad), good], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    for value in bad:
        for call_name in ("forward", "step", "memory_stats"):
            message = report[f"{value!r} {call_name}"]
            assert message is not None, f"{name}={value!r}: {call_name} was not refused"
            assert f"{name}='{value}'" in message, f"{name}={value!r}: {call_name} raised {message!r}"
            assert "is not valid" in message
    # The good value took effect, and the later bad one was never read.
    stats_first, stats_after, steps = report["after good"]
    assert steps == 8
    expected = {"pool.limit_bytes": (3 if name == "CWRNN_OUTPUT_CACHE_MB" else 64) * MIB,
                "workspace.limit_bytes": (3 if name == "CWRNN_WORKSPACE_CACHE_MB" else 64) * MIB}
    for key, limit in expected.items():
        assert stats_first[key] == stats_after[key] == limit, (key, stats_first[key], stats_after[key])


def test_defaults_and_accepted_values():
    script = "import json, cwrnn_ext; print(json.dumps(cwrnn_ext.memory_stats()))"
    default = json.loads(run_python(script))
    assert default["pool.limit_bytes"] == 64 * MIB and default["workspace.limit_bytes"] == 64 * MIB
    chosen = json.loads(run_python(script, CWRNN_OUTPUT_CACHE_MB="0", CWRNN_WORKSPACE_CACHE_MB="0128",
                                   CWRNN_HUGE_PAGES="0"))
    assert chosen["pool.limit_bytes"] == 0 and chosen["workspace.limit_bytes"] == 128 * MIB


def test_memory_stats_keys_and_types():
    stats = cwrnn_ext.memory_stats()
    assert set(stats) == KEYS
    assert all(isinstance(v, int) and v >= 0 for v in stats.values()), stats
    assert stats["pool.cached_bytes"] <= stats["pool.peak_cached_bytes"] <= stats["pool.limit_bytes"]
    assert stats["workspace.cached_bytes"] <= stats["workspace.peak_cached_bytes"] <= stats["workspace.limit_bytes"]


def pooled_forward_args(seed=0):
    """A forward whose output (64 * 16 * 256 float32, 1 MiB) is pooled and that uses a workspace."""
    p = make_problem(64, 16, 5, 256, [1, 2, 4, 8], dtype=torch.float32, seed=seed, requires_grad=False)
    return (p.input, p.hx, p.weight_ih, p.weight_hh, p.bias_ih + p.bias_hh, p.periods, p.module_sizes, 0,
            "tanh", None)


def test_pooled_result_is_counted_and_empty_cache_frees_it():
    args = pooled_forward_args()
    for _ in range(2):  # the second call on this thread needs one block (workspace.h), kept
        forward_op(*args)
    cwrnn_ext.empty_cache()
    before = cwrnn_ext.memory_stats()
    assert before["pool.cached_bytes"] == 0 and before["workspace.cached_bytes"] == 0
    out, _ = forward_op(*args)
    live = cwrnn_ext.memory_stats()
    assert live["pool.live_bytes"] >= before["pool.live_bytes"] + out.nbytes
    assert live["pool.misses"] == before["pool.misses"] + 1  # the pool was empty
    assert live["workspace.cached_bytes"] > 0  # the call's workspace block, idle again
    nbytes = out.nbytes
    del out
    kept = cwrnn_ext.memory_stats()
    assert kept["pool.cached_bytes"] >= nbytes
    assert kept["pool.live_bytes"] == before["pool.live_bytes"]
    out, _ = forward_op(*args)  # the same size: the kept block
    again = cwrnn_ext.memory_stats()
    assert again["pool.hits"] == kept["pool.hits"] + 1 and again["pool.cached_bytes"] == 0
    assert again["workspace.hits"] == kept["workspace.hits"] + 1  # the idle workspace sufficed
    del out
    cwrnn_ext.empty_cache()
    emptied = cwrnn_ext.memory_stats()
    assert emptied["pool.cached_bytes"] == 0 and emptied["workspace.cached_bytes"] == 0
    out, _ = forward_op(*args)  # and the next call maps afresh
    assert cwrnn_ext.memory_stats()["pool.misses"] == emptied["pool.misses"] + 1
    del out


def test_empty_cache_frees_the_idle_workspace_of_another_thread():
    args = pooled_forward_args(seed=1)
    cwrnn_ext.empty_cache()

    def work(_):
        for _ in range(2):  # a new thread's second call needs one block, kept
            forward_op(*args)

    run_in_threads(work, 1)  # the thread has ended; its block is on the idle list
    assert cwrnn_ext.memory_stats()["workspace.cached_bytes"] > 0
    cwrnn_ext.empty_cache()
    assert cwrnn_ext.memory_stats()["workspace.cached_bytes"] == 0


def test_empty_cache_leaves_live_results_intact():
    args = pooled_forward_args(seed=2)
    out, _ = forward_op(*args)
    expected = out.clone()
    cwrnn_ext.empty_cache()
    other, _ = forward_op(*pooled_forward_args(seed=3))
    assert other.data_ptr() != out.data_ptr()
    assert torch.equal(out, expected)


# Python threads running backward calls at once (each needs a workspace of a few MiB) while one
# more thread samples memory_stats: the idle workspace memory of all threads together never
# exceeds CWRNN_WORKSPACE_CACHE_MB, while each thread alone would keep its own below it.
CAP_SCRIPT = """
import json, sys, threading, torch, cwrnn_ext
sys.path[:0] = [sys.argv[1]]
from helpers import make_problem, run_in_threads
threads, calls = 4, 6
problems = [make_problem(64, 16, 32, 256, [1, 2, 4, 8], dtype=torch.float32, seed=i) for i in range(threads)]
def args(p):
    bias = (p.bias_ih + p.bias_hh).detach()
    return (p.input.detach(), p.hx.detach(), p.weight_ih.detach(), p.weight_hh.detach(), bias, p.periods,
            p.module_sizes, 0, "tanh", None)
def one_call(p):
    out, _ = torch.ops.cwrnn_ext.forward(*args(p))
    a = args(p)
    grads = torch.ops.cwrnn_ext.backward(torch.ones_like(out), None, *a[:4], out, *a[5:])
    return grads
torch.set_num_threads(1)
for _ in range(2):  # the second call's forward starts with one block of the backward's peak
    one_call(problems[0])
single = cwrnn_ext.memory_stats()["workspace.cached_bytes"]
cwrnn_ext.empty_cache()
samples, done = [], threading.Event()
def sample():
    while not done.is_set():
        samples.append(cwrnn_ext.memory_stats()["workspace.cached_bytes"])
sampler = threading.Thread(target=sample)
sampler.start()
def work(i):
    torch.set_num_threads(1)
    for _ in range(calls):
        one_call(problems[i])
try:
    run_in_threads(work, threads)
finally:
    done.set()
    sampler.join()
print(json.dumps({"single": single, "samples": samples, "stats": cwrnn_ext.memory_stats()}))
"""


def test_workspace_total_stays_under_the_cap_with_threads():
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    env = environment(CWRNN_WORKSPACE_CACHE_MB="3")
    result = subprocess.run([sys.executable, "-c", CAP_SCRIPT, tests_dir], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    stats, limit = report["stats"], 3 * MIB
    assert stats["workspace.limit_bytes"] == limit
    # One thread's idle workspace fits; the four threads' together would not.
    assert 0 < report["single"] <= limit < 4 * report["single"], report["single"]
    assert report["samples"] and max(report["samples"]) <= limit
    assert 0 < stats["workspace.peak_cached_bytes"] <= limit
    assert 0 < stats["workspace.cached_bytes"] <= limit
    assert stats["workspace.active_bytes"] == 0  # no call is running


def test_workspace_cache_off_keeps_nothing():
    script = ("import json, torch, cwrnn_ext\n"
              "x = torch.randn(64, 16, 5); w_ih = torch.randn(256, 5); w_hh = torch.randn(256, 256)\n"
              "for _ in range(3):\n"
              "    torch.ops.cwrnn_ext.forward(x, torch.zeros(16, 256), w_ih, w_hh, None, [1, 2], [128, 128], 0,"
              " 'tanh', None)\n"
              "print(json.dumps(cwrnn_ext.memory_stats()))\n")
    stats = json.loads(run_python(script, CWRNN_WORKSPACE_CACHE_MB="0"))
    assert stats["workspace.limit_bytes"] == 0
    assert stats["workspace.cached_bytes"] == stats["workspace.peak_cached_bytes"] == 0
    assert stats["workspace.misses"] == 3 and stats["workspace.hits"] == 0
    assert stats["pool.cached_bytes"] > 0  # the pool is a separate setting


def test_threads_sharing_idle_workspaces_get_correct_results():
    """Idle workspace blocks move between threads: results equal the serial ones bitwise."""
    all_args = [pooled_forward_args(seed=10 + i) for i in range(3)]
    serial = [forward_op(*a)[0].clone() for a in all_args]

    def work(i):
        for j in range(6):
            k = (i + j) % len(all_args)
            assert torch.equal(forward_op(*all_args[k])[0], serial[k])

    run_in_threads(work, 3)
