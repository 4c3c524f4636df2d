"""The speed benchmark: its CLI (`python -m benchmarks speed`, also spelled `python -m
benchmarks.speed`) runs end to end (--smoke, into a temporary folder) and leaves the git tree as it
was, stops cleanly with partial results when interrupted, limits the CPU capability on request, its
parts (plans, fresh measuring processes, quartiles, load threshold, time estimate, target minima,
FMA peak, plot ticks) do what they say, the committed results still draw, and the two things its
numbers rest on are right: the naive dense-masked CW-RNN computes the library's function, and the
work count gives the ratios of docs/design.md (The work count)."""
import csv
import dataclasses
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `pytest tests` (not `python -m pytest`) does not add the repo root
    sys.path.insert(0, str(ROOT))

import cwrnn_ext  # noqa: E402
from cwrnn_ext.layout import allowed_mask  # noqa: E402

from benchmarks import runner as runner_module  # noqa: E402
from benchmarks.configs import (CPU_TARGETS, PASSES, PLANS, TARGET_A, TARGET_C, TARGET_D, TARGET_E,  # noqa: E402
                                TARGET_MINIMA, Config, Timing)
from benchmarks.machine import CAPABILITY_ENV, busy_note, fma_peak_per_s, threshold  # noqa: E402
from benchmarks.measure import FreshProcesses, Task, summarise  # noqa: E402
from benchmarks.models import CHECK_CONFIGS, MODEL_NAMES, build_models, max_differences  # noqa: E402
from benchmarks.report import evaluate_targets  # noqa: E402
from benchmarks.runner import Progress, planned_configs  # noqa: E402
from benchmarks.speed import DEFAULT_OUT, RESULTS_DIR, parse_args  # noqa: E402
from benchmarks.work import (count_ticks, cwrnn_macs, cwrnn_parameter_count, kernel_macs,  # noqa: E402
                             lstm_hidden_for_params, lstm_parameter_count, srn_macs, work_ratio)

PLOTS = ("targets", "speedup_vs_hidden", "speedup_vs_modules", "time_vs_length")
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
TIMING_FIELDS = ("median_ms", "q1_ms", "q3_ms", "iqr_ms", "min_ms", "cold_ms", "faults_per_call", "cold_faults")


def git_status():
    """`git status` of the checkout (untracked files listed one by one), or None outside git."""
    try:
        result = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def default_out_files():
    """The files in the default output folder with their modification times (tests must not touch them)."""
    return {p: p.stat().st_mtime_ns for p in DEFAULT_OUT.rglob("*")} if DEFAULT_OUT.exists() else {}


def run_benchmark(*args, timeout=900):
    result = subprocess.run([sys.executable, "-m", "benchmarks", "speed", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """`python -m benchmarks speed --smoke --out <a temporary folder>`."""
    out = tmp_path_factory.mktemp("benchmark")
    before, default_before = git_status(), default_out_files()
    result = run_benchmark("--smoke", "--out", str(out))
    return out, result.stdout, result.stderr, before, git_status(), default_before


def test_smoke_leaves_git_status_and_the_default_output_folder_unchanged(smoke_run):
    out, _, _, before, after, default_before = smoke_run
    assert default_out_files() == default_before, "a test wrote into benchmarks/out/"
    assert (out / "smoke_cpu.json").exists()  # it wrote where it was told
    if before is None:
        pytest.skip("not a git checkout")
    assert after == before, "a benchmark run changed the git tree (outputs must go to an ignored folder)"


def test_smoke_reports_progress_on_stderr(smoke_run):
    _, stdout, stderr, *_ = smoke_run
    assert "configuration 1 of 5" in stderr and "configuration 5 of 5 done" in stderr
    first = next(line for line in stderr.splitlines() if "configuration 1 of 5" in line)
    assert first.endswith("ETA estimating")  # no guess before one configuration is measured
    assert "configuration 1 of 5 done" in stderr and "ETA 0:" in stderr
    assert "configuration 1 of" not in stdout
    assert "No CUDA runtime" not in stderr


@pytest.mark.parametrize("command", [["benchmarks", "speed"], ["benchmarks.speed"]], ids=" ".join)
def test_help_prints_no_warning(command):
    result = subprocess.run([sys.executable, "-m", *command, "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "--update-results" in result.stdout
    assert result.stdout.startswith("usage: python -m benchmarks speed")
    assert result.stderr == "", result.stderr  # e.g. torch's "No CUDA runtime is found" on import


def test_entry_point_lists_its_commands_and_refuses_an_unknown_one():
    listed = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0 and all(f"\n  {name} " in listed.stdout for name in ("speed", "streaming", "plots"))
    unknown = subprocess.run([sys.executable, "-m", "benchmarks", "sped"], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    assert unknown.returncode == 2 and "speed" in unknown.stderr and unknown.stdout == ""


def test_streaming_refuses_an_unknown_section():
    from benchmarks.streaming import parse_args as streaming_args
    assert streaming_args(["--sections", "crossover"]).sections == ["crossover"]
    with pytest.raises(SystemExit):
        streaming_args(["--sections", "step,crossovr"])


def test_streaming_work_ratio_is_the_mean_step_over_a_clock_cycle():
    """A step's work averaged over the cycle: module i costs k_i (I + columns it reads) / T_i."""
    from benchmarks.streaming import INPUT_SIZE
    cell = cwrnn_ext.ClockworkRNNCell(INPUT_SIZE, 512, num_modules=8)
    begins = [sum(cell.module_sizes[:i]) for i in range(8)]
    mean = sum(k * (INPUT_SIZE + 512 - b) / p for p, k, b in zip(cell.periods, cell.module_sizes, begins))
    ratio = work_ratio(cell.periods, cell.module_sizes, INPUT_SIZE, max(cell.periods))
    assert ratio == pytest.approx(512 * (INPUT_SIZE + 512) / mean, rel=1e-12)


def test_output_folder_options():
    assert parse_args(["--smoke"]).out == DEFAULT_OUT
    assert parse_args(["--out", "/tmp/somewhere"]).out == Path("/tmp/somewhere")
    assert parse_args(["--update-results"]).out == RESULTS_DIR
    for refused in (["--smoke", "--update-results"], ["--update-results", "--out", "x"]):
        with pytest.raises(SystemExit):
            parse_args(refused)


def test_smoke_json_has_every_model_and_pass(smoke_run):
    out = smoke_run[0]
    payload = json.loads((out / "smoke_cpu.json").read_text())
    records = payload["records"]
    for pass_name in ("forward", "forward_backward"):
        timed = {r["model"] for r in records if r["pass"] == pass_name and r["status"] == "ok"}
        assert timed == set(MODEL_NAMES), pass_name
    assert {r["dtype"] for r in records} == {"float32"} and {r["device"] for r in records} == {"cpu"}
    assert all(r["median_ms"] > 0 for r in records if r["status"] == "ok")
    assert all(r["peak_memory_mib"] is not None for r in records
               if r["pass"] == "forward_backward" and r["status"] == "ok")
    assert all(r["work_ratio"] > 1 for r in records if r["model"].startswith("cwrnn"))
    assert payload["meta"]["threads"] >= 1 and payload["meta"]["memory"] and payload["meta"]["timing"]
    for r in records:
        if r["status"] == "ok":
            assert r["q1_ms"] <= r["median_ms"] <= r["q3_ms"] and r["min_ms"] <= r["q1_ms"], r
            assert r["cold_ms"] > 0 and r["faults_per_call"] >= 0 and r["samples"] >= 1, r
            assert r["speedup_vs_rnn_cold"] > 0, r
        assert isinstance(r["load_busy"], bool)
    meta = payload["meta"]
    assert meta["load_threshold"] == threshold(meta["threads"], meta["cores"])
    assert "load_warning" in meta and "load_average_1min_start" in meta
    assert meta["mode"] == "smoke" and meta["torch"] == torch.__version__ and meta["started"]
    assert meta["command"] == f"python -m benchmarks speed --smoke --out {out}" and meta["cpu_model"]
    capability = torch.backends.cpu.get_cpu_capability()
    assert meta["cpu_capability"]["torch"] == capability and meta["capability_env"] == {}
    assert {r["cpu_capability"] for r in records if r["model"] != "cwrnn"} == {capability}
    targets = payload["targets"]
    assert [t["key"] for t in targets] == [t.key for t in CPU_TARGETS] == ["a", "b", "c", "d", "e"]
    assert all(t["work_ratio"] > 1 and t["speedup_vs_rnn"] > 0 and "load_busy" in t for t in targets)
    minima = TARGET_MINIMA.get(meta["cpu_capability"]["kernel"], {})
    assert [t["minimum"] for t in targets] == [minima.get(key) for key in "abcde"]
    assert all(t["kernel_gfma_per_s"] > 0 for t in targets)


def test_smoke_times_every_model_as_a_bidirectional_layer(smoke_run):
    records = json.loads((smoke_run[0] / "smoke_cpu.json").read_text())["records"]
    bidirectional = [r for r in records if r["bidirectional"]]
    for pass_name in ("forward", "forward_backward"):
        assert {r["model"] for r in bidirectional if r["pass"] == pass_name and r["status"] == "ok"} == set(MODEL_NAMES)
    sizes = ("dtype", "batch", "steps", "input_size", "hidden_size", "num_modules")
    one_way = {(r["model"], r["pass"]): r for r in records if not r["bidirectional"]
               and all(r[field] == bidirectional[0][field] for field in sizes)}
    for r in bidirectional:
        same = one_way[(r["model"], r["pass"])]
        assert r["parameters"] == 2 * same["parameters"], r["model"]  # both directions counted
        if r["model"].startswith("cwrnn"):  # twice the work on both sides: the same ratio
            assert r["work_ratio"] == same["work_ratio"] > 1
        assert r["speedup_vs_rnn"] > 0 and r["speedup_vs_lstm"] > 0


def test_smoke_streaming_file_names_its_mode_and_has_metadata(smoke_run):
    payload = json.loads((smoke_run[0] / "streaming_smoke_cpu.json").read_text())
    assert payload["meta"]["mode"] == "smoke" and payload["meta"]["device"] == "cpu"
    assert payload["meta"]["cpu_capability"]["torch"] == torch.backends.cpu.get_cpu_capability()
    assert payload["meta"]["command"].startswith("python -m benchmarks streaming --smoke")
    assert {row["section"] for row in payload["rows"]} == {"step", "chunk", "crossover"}


def test_quick_plan_is_the_targets_kernel_against_nn_rnn_each_targets_pass():
    planned = planned_configs(PLANS["quick"])
    both = ("forward", "forward_backward")
    assert planned == [(TARGET_A, ("cwrnn", "rnn"), both), (TARGET_C, ("cwrnn", "rnn"), ("forward",)),
                       (TARGET_D, ("cwrnn", "rnn"), ("forward",)),
                       (TARGET_E, ("cwrnn", "rnn"), ("forward_backward",))]


def test_full_plan_times_every_model_and_pass_on_the_targets():
    planned = {config: (names, passes) for config, names, passes in planned_configs(PLANS["full"])}
    for target in CPU_TARGETS:
        assert planned[target.config] == (MODEL_NAMES, ("forward", "forward_backward")), target.key


def test_full_plan_times_target_a_bidirectional_without_a_verdict():
    plan = PLANS["full"]
    planned = {config: (names, passes) for config, names, passes in planned_configs(plan)}
    bidirectional = dataclasses.replace(TARGET_A, bidirectional=True)
    assert plan.bidirectional == bidirectional and planned[bidirectional] == (("cwrnn", "rnn", "lstm"), PASSES)
    assert not any(t.config.bidirectional for t in plan.targets) and PLANS["quick"].bidirectional is None


def test_records_written_before_the_bidirectional_field_still_match():
    old = {"batch": 32, "steps": 512, "input_size": 64, "hidden_size": 512, "num_modules": 8, "dtype": "float32"}
    config = Config(32, 512, 64, 512, 8)
    assert config.matches(old) and not Config(32, 512, 64, 512, 8, bidirectional=True).matches(old)
    assert config.matches({**old, "bidirectional": False}) and not config.matches({**old, "bidirectional": True})


def test_bidirectional_models_are_shaped_as_nn_rnn():
    config = Config(batch=2, steps=6, input_size=3, hidden_size=8, num_modules=3, bidirectional=True)
    models = build_models(config, MODEL_NAMES, torch.device("cpu"), torch.float32)
    input = torch.randn(config.steps, config.batch, config.input_size)
    for name, model in models.items():
        output, h_n = model(input)
        assert output.shape == (6, 2, 2 * model.hidden_size) and h_n.shape == (2, 2, model.hidden_size), name


def test_smoke_csv_has_every_model(smoke_run):
    out = smoke_run[0]
    with (out / "smoke_cpu.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["model"] for row in rows} == set(MODEL_NAMES)
    assert {"bidirectional", "median_ms", "speedup_vs_rnn", "speedup_vs_rnn_cold", "speedup_vs_lstm", "work_ratio",
            "realised", "load_busy", "other_cores", *TIMING_FIELDS} <= set(rows[0])


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="plots need matplotlib (requirements.txt)")
def test_smoke_writes_the_plots(smoke_run):
    out = smoke_run[0]
    for plot in PLOTS:
        png = out / f"smoke_cpu_float32_{plot}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="plots need matplotlib (requirements.txt)")
def test_plots_can_be_redrawn_from_the_json(smoke_run, tmp_path):
    from benchmarks.plots import main as redraw
    assert redraw([str(smoke_run[0] / "smoke_cpu.json"), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"smoke_cpu_float32_{plot}.png" for plot in PLOTS)


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="plots need matplotlib (requirements.txt)")
def test_plots_redraw_a_json_written_before_bidirectional_rows(smoke_run, tmp_path):
    """Committed result files predate the field: their records read as unidirectional."""
    from benchmarks.plots import main as redraw
    payload = json.loads((smoke_run[0] / "smoke_cpu.json").read_text())
    payload["records"] = [{k: v for k, v in r.items() if k != "bidirectional"}
                          for r in payload["records"] if not r["bidirectional"]]
    old = tmp_path / "smoke_cpu.json"
    old.write_text(json.dumps(payload))
    assert redraw([str(old), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "smoke_cpu_float32_targets.png").read_bytes()[:4] == b"\x89PNG"


def test_smoke_prints_tables_and_targets(smoke_run):
    stdout = smoke_run[1]
    assert "CPU targets" in stdout and "theoretical work ratio" in stdout and "cold ms" in stdout
    # Each verdict as soon as its configuration is measured, then all of them at the end; the
    # bidirectional row gets none.
    assert stdout.count("target >= ") == 2 * len(CPU_TARGETS)
    table_a = stdout.index("B=2 T=16 I=4 H=16 g=4 float32  periods")
    assert table_a < stdout.index("target (a) ") < stdout.index("B=2 T=8 I=4 H=16 g=4 float32  periods")
    assert "g=4 float32 bidirectional" in stdout
    for name in ("CW-RNN kernel", "CW-RNN reference", "CW-RNN dense-masked", "nn.RNN", "nn.LSTM same params"):
        assert name in stdout


def test_each_measurement_runs_in_its_own_fresh_process():
    processes = FreshProcesses()
    config = Config(batch=2, steps=5, input_size=3, hidden_size=6, num_modules=2)
    timing = Timing(min_run_time=0.001, min_repeats=2, max_run_time=1.0, rounds=1)
    tasks = [Task(config, model, "forward", 1, timing) for model in ("cwrnn", "rnn")]
    results = [processes.run(task, timeout_s=300) for task in tasks]
    for result in results:
        assert result["status"] == "ok", result
        assert result["cold_s"] > 0 and result["calls"] >= 1 and all(t > 0 for t in result["warm_s"])
    pids = {result["pid"] for result in results}
    assert len(pids) == 2 and os.getpid() not in pids
    failed = processes.run(Task(config, "no_such_model", "forward", 1, timing), 300)
    assert failed["status"].startswith("failed: ValueError: unknown model 'no_such_model'")


@pytest.mark.parametrize("values", [[3.0], [1.0, 2.0], [5.0, 1.0, 4.0, 2.0, 3.0], [0.5, 9.0, 2.0, 7.5, 1.0, 3.0, 8.0]])
def test_quartiles(values):
    summary = summarise(values)
    ordered = sorted(values)
    assert summary.median_s == statistics.median(values) and summary.min_s == ordered[0]
    assert summary.samples == len(values)
    expected = torch.quantile(torch.tensor(values, dtype=torch.float64), torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert summary.q1_s == pytest.approx(expected[0].item()) and summary.q3_s == pytest.approx(expected[1].item())


def test_load_threshold_is_relative_to_the_threads():
    assert threshold(2, cores=2) == 0.5 and threshold(1, cores=2) == 1.5 and threshold(4, cores=16) == 12.5
    quiet = {"other_cores": 0.2, "load_1min": 0.3, "threshold": 0.5, "busy": False}
    busy = {"other_cores": 1.3, "load_1min": 3.1, "threshold": 0.5, "busy": True}
    assert busy_note([quiet, quiet], threads=2) is None
    note = busy_note([quiet, busy], threads=2)
    assert "1.3" in note and "threshold 0.5" in note and "1 of 2" in note


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="plots need matplotlib (requirements.txt)")
@pytest.mark.parametrize("low,high", [(0.04, 0.9), (1.0, 1.0), (0.3, 37.0), (7.9, 1234.0)])
def test_log_ticks_cover_the_data_with_1_2_5_steps(low, high):
    from benchmarks.plots import nice_ticks
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    assert all(f"{t:e}"[0] in "125" for t in ticks)  # first significant digit
    assert all(2 <= b / a <= 2.5 for a, b in zip(ticks, ticks[1:]))


def test_naive_dense_masked_matches_reference_float64():
    config = Config(batch=3, steps=41, input_size=6, hidden_size=23, num_modules=5, dtype="float64")
    models = build_models(config, ["cwrnn_reference", "cwrnn_naive"], torch.device("cpu"), torch.float64)
    input = torch.randn(config.steps, config.batch, config.input_size, dtype=torch.float64)
    naive = models["cwrnn_naive"].module
    with torch.no_grad():
        expected_output, expected_h = cwrnn_ext.reference.clockwork_rnn(
            input, None, naive.weight_ih_l0, naive.weight_hh_l0, naive.bias_ih_l0, naive.bias_hh_l0,
            config.periods, config.module_sizes)
        output, h_n = models["cwrnn_naive"](input)
    torch.testing.assert_close(output, expected_output, rtol=0, atol=1e-12)
    torch.testing.assert_close(h_n[0], expected_h, rtol=0, atol=1e-12)


@pytest.mark.parametrize("config", CHECK_CONFIGS, ids=lambda c: "bidirectional" if c.bidirectional else "unidirectional")
def test_clockwork_variants_agree_with_gradients(config):
    differences = max_differences(config)
    assert set(differences) == {"cwrnn", "cwrnn_naive"}
    assert all(d < 1e-9 for d in differences.values()), differences


@pytest.mark.parametrize("steps", [128, 256, 512, 4096])
def test_work_ratio_exponential_g8_is_4_5(steps):
    periods, sizes = cwrnn_ext.exponential_periods(8), cwrnn_ext.split_evenly(512, 8)
    assert work_ratio(periods, sizes, 64, steps) == pytest.approx(4.5, rel=1e-12)


@pytest.mark.parametrize("hidden,modules,input_size", [(512, 8, 64), (100, 7, 3), (16, 4, 0)])
def test_work_ratio_all_periods_one_is_the_srn(hidden, modules, input_size):
    sizes = cwrnn_ext.split_evenly(hidden, modules)
    assert work_ratio([1] * modules, sizes, input_size, 37) == 1.0


@pytest.mark.parametrize("t0", [0, 1, 5])
def test_work_count_matches_a_step_by_step_count(t0):
    periods, sizes, input_size, steps, batch = [1, 3, 3, 4, 7], [2, 3, 1, 1, 4], 5, 29, 2
    mask = allowed_mask(periods, sizes)
    unit_period = torch.repeat_interleave(torch.tensor(periods), torch.tensor(sizes))
    expected = 0
    for t in range(t0, t0 + steps):
        active_rows = t % unit_period == 0
        expected += int((mask[active_rows].sum(dim=1) + input_size).sum())
    assert cwrnn_macs(periods, sizes, input_size, steps, batch, t0) == batch * expected
    assert srn_macs(input_size, 11, steps, batch) == batch * steps * (input_size * 11 + 11 * 11)
    assert count_ticks(7, 29, 5) == len([t for t in range(5, 34) if t % 7 == 0])


def test_parameter_counts():
    model = cwrnn_ext.ClockworkRNN(64, 512, num_modules=8)
    allowed = int(allowed_mask(model.periods, model.module_sizes).sum())
    assert cwrnn_parameter_count(model.periods, model.module_sizes, 64) == allowed + 512 * 64 + 2 * 512
    hidden = lstm_hidden_for_params(181248, 64)
    assert lstm_parameter_count(64, hidden) == sum(p.numel() for p in torch.nn.LSTM(64, hidden).parameters())
    best = min(range(1, 400), key=lambda h: abs(lstm_parameter_count(64, h) - 181248))
    assert hidden == best


def test_interrupt_saves_partial_results_and_prints_one_line(tmp_path):
    """SIGINT (as Ctrl-C sends) once the first configuration is done: exit 130, no traceback, one
    line with the verdicts so far, and a JSON with the measured targets filled in."""
    process = subprocess.Popen([sys.executable, "-m", "benchmarks", "speed", "--smoke", "--no-streaming",
                                "--out", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    stderr = []
    try:
        for line in process.stderr:
            stderr.append(line)
            if "configuration 2 of 5" in line and "started" in line:
                process.send_signal(signal.SIGINT)
                break
        rest, errors = process.communicate(timeout=300)
    finally:
        process.kill()
    output = rest + errors + "".join(stderr)
    assert process.returncode == 128 + signal.SIGINT, output
    assert "Traceback" not in output and "Error" not in output, output
    (line,) = [line for line in rest.splitlines() if line.startswith("interrupted")]
    assert line.startswith("interrupted (SIGINT) after ") and "(a) " in line and "(c) not measured" in line
    assert str(tmp_path / "smoke_cpu.json") in line
    payload = json.loads((tmp_path / "smoke_cpu.json").read_text())
    assert payload["meta"]["interrupted"].startswith("SIGINT after ")
    measured = {t["key"]: t["speedup_vs_rnn"] is not None for t in payload["targets"]}
    assert measured == {"a": True, "b": True, "c": False, "d": False, "e": False}
    assert {r["model"] for r in payload["records"]} == set(MODEL_NAMES)


def test_capability_option_limits_every_process(tmp_path):
    """--capability default: every process runs torch's baseline kernels with MKL and oneDNN limited
    to match, the files and header say so, and the baseline's minima apply."""
    result = run_benchmark("--smoke", "--no-streaming", "--capability", "default", "--out", str(tmp_path))
    assert "limited by --capability default: ATEN_CPU_CAPABILITY=default" in result.stdout
    payload = json.loads((tmp_path / "smoke_default_cpu.json").read_text())
    meta = payload["meta"]
    assert meta["capability_env"] == CAPABILITY_ENV["default"] and meta["cpu_capability"]["torch"] == "DEFAULT"
    assert {r["cpu_capability"] for r in payload["records"] if r["model"] == "rnn"} == {"DEFAULT"}
    if meta["cpu_capability"]["cwrnn_ext"] is None:  # the kernel's capability is torch's then
        assert {r["cpu_capability"] for r in payload["records"]} == {"DEFAULT"}
    else:
        assert {t["minimum"] for t in payload["targets"] if t["key"] in "bde"} == {None}
    if meta["cpu_capability"]["kernel"] == "DEFAULT":
        assert {t["key"]: t["minimum"] for t in payload["targets"]} == {"a": 4.0, "b": None, "c": 10.0,
                                                                      "d": None, "e": None}
    assert "CPU targets (" + meta["cpu_capability"]["kernel"] + ")" in result.stdout


def kernel_record(config, pass_name, speedup, median_ms=2.0):
    return {"model": "cwrnn", "pass": pass_name, "status": "ok", "speedup_vs_rnn": speedup,
            "speedup_vs_rnn_cold": 1.0, "work_ratio": 4.5, "median_ms": median_ms, "other_cores": 0.0,
            "load_1min": 0.1, "load_busy": False, **{f: getattr(config, f) for f in
                                                      ("batch", "steps", "input_size", "hidden_size",
                                                       "num_modules", "dtype", "bidirectional")}}


@pytest.mark.parametrize("capability,expected", [
    ("AVX512", {"a": True, "b": True, "c": False, "d": None, "e": None}),
    ("AVX2", {"a": False, "b": True, "c": False, "d": None, "e": None}),
    ("DEFAULT", {"a": True, "b": None, "c": False, "d": None, "e": None}),
    ("SVE256", {"a": None, "b": None, "c": None, "d": None, "e": None}),
])
def test_target_verdicts_use_the_minima_of_the_capability(capability, expected):
    records = [kernel_record(TARGET_A, "forward", 9.0), kernel_record(TARGET_A, "forward_backward", 8.0),
               kernel_record(TARGET_C, "forward", 9.5)]  # d and e not measured
    results = evaluate_targets(CPU_TARGETS, records, capability, threads=2, mhz=2000.0)
    assert {r["key"]: r["passed"] for r in results} == expected
    assert [r["minimum"] for r in results] == [TARGET_MINIMA.get(capability, {}).get(k) for k in "abcde"]


def test_fma_peak_share_of_a_target():
    (result,) = evaluate_targets(CPU_TARGETS[:1], [kernel_record(TARGET_A, "forward", 9.0, median_ms=10.0)],
                                 "AVX2", threads=2, mhz=2000.0)
    peak = 2 * 2000e6 * 2 * 8  # cores x Hz x FMA units x float32 lanes of AVX2
    assert fma_peak_per_s(2, "AVX2", 2000.0) == peak
    assert result["kernel_gfma_per_s"] == pytest.approx(400_556_032 / 0.010 / 1e9)
    assert result["fma_peak_share"] == pytest.approx(400_556_032 / 0.010 / peak)
    assert fma_peak_per_s(2, "AVX512", None) is None and fma_peak_per_s(2, "SVE256", 2000.0) is None


def test_kernel_macs_counts_the_module_major_schedule():
    """0.40 G multiply-adds at target (a) (docs/design.md, Held terms), and a count walking every step."""
    periods, sizes = cwrnn_ext.exponential_periods(8), cwrnn_ext.split_evenly(512, 8)
    assert kernel_macs(periods, sizes, 64, 512, 32) == 400_556_032
    periods, sizes, input_size, steps = [1, 2, 4, 8], [3, 2, 4, 1], 5, 29
    expected, begins = 0, [sum(sizes[:i]) for i in range(len(sizes))]
    for t in range(steps):
        for period, size in zip(periods, sizes):
            if t % period == 0:  # a tick: its input and its diagonal block
                expected += size * (input_size + size)
    for period, size, begin in zip(periods, sizes, begins):
        held = 1 + len([t for t in range(steps) if t % period == 0])  # the initial state, then each tick's
        expected += held * begin * size  # each multiplied once for the faster modules' rows
    assert kernel_macs(periods, sizes, input_size, steps, batch=3) == 3 * expected


def test_time_estimate_waits_for_a_measured_configuration(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(runner_module.time, "perf_counter", lambda: now[0])
    progress = Progress([(10.0, 2), (30.0, 4)])
    progress.start_config("first")
    now[0] += 5
    progress.task_done()
    assert progress.eta_s() is None and progress.eta_text() == "ETA estimating"
    now[0] += 15
    progress.task_done()
    progress.end_config()  # 20 s for 10 units of cost
    assert progress.eta_s() == pytest.approx(60.0)
    progress.start_config("second")
    progress.task_done()
    assert progress.eta_s() == pytest.approx(45.0)  # a quarter of its processes done


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="plots need matplotlib (requirements.txt)")
def test_plots_redraw_a_file_written_before_the_modes_were_renamed(smoke_run, tmp_path):
    """Old files have no cpu_capability in meta; their "quick" is the plan now called "full"."""
    from benchmarks.plots import main as redraw
    payload = json.loads((smoke_run[0] / "smoke_cpu.json").read_text())
    del payload["meta"]["cpu_capability"]
    payload["meta"]["mode"] = "quick"
    old = tmp_path / "quick_cpu.json"
    old.write_text(json.dumps(payload))
    assert redraw([str(old), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(f"quick_cpu_float32_{p}.png" for p in PLOTS)


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="plots need matplotlib (requirements.txt)")
def test_plots_redraw_the_committed_results(tmp_path):
    """benchmarks/results/quick_cpu.json predates the renamed modes, the capability and the
    bidirectional rows: its plots are drawn by today's code, as --update-results wrote them."""
    from benchmarks.plots import main as redraw
    assert redraw([str(ROOT / "benchmarks" / "results" / "quick_cpu.json"), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"quick_cpu_float32_{plot}.png" for plot in PLOTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (ROOT / "benchmarks" / "results").glob("quick_cpu_float32_*.png"))


def test_a_table_names_each_model_on_its_first_row_whatever_the_pass():
    from benchmarks.report import config_table
    records = [{**kernel_record(TARGET_E, "forward_backward", 7.0), "model_label": "CW-RNN kernel",
                "model_hidden_size": 256, "parameters": 52396, "iqr_ms": 0.1, "cold_ms": 3.0,
                "speedup_vs_lstm": None, "realised": 1.1, "faults_per_call": 6, "peak_memory_mib": 10.4}]
    rows = config_table(TARGET_E, records).splitlines()
    assert rows[2].startswith("CW-RNN kernel        f+b    256    52,396")


def test_the_kernels_own_capability_is_used_when_the_library_reports_one(monkeypatch):
    from benchmarks.machine import cpu_capabilities
    monkeypatch.delattr(cwrnn_ext, "cpu_capability", raising=False)
    assert cpu_capabilities() == {"torch": torch.backends.cpu.get_cpu_capability(), "cwrnn_ext": None,
                                  "kernel": torch.backends.cpu.get_cpu_capability()}
    monkeypatch.setattr(cwrnn_ext, "cpu_capability", lambda: "AVX2", raising=False)
    assert cpu_capabilities()["cwrnn_ext"] == cpu_capabilities()["kernel"] == "AVX2"
