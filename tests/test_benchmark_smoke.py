"""The speed benchmark: its CLI runs end to end (--smoke), and the two things its numbers rest on
are right: the naive dense-masked CW-RNN computes the library's function, and the work count
gives the ratios of docs/design.md (The work count)."""
import csv
import importlib.util
import json
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

from benchmarks.checks import CHECK_CONFIG, max_differences  # noqa: E402
from benchmarks.configs import Config  # noqa: E402
from benchmarks.models import MODEL_NAMES, build_models  # noqa: E402
from benchmarks.work import (count_ticks, cwrnn_macs, cwrnn_parameter_count,  # noqa: E402
                             lstm_hidden_for_params, lstm_parameter_count, srn_macs, work_ratio)

PLOTS = ("speedup_vs_hidden", "speedup_vs_modules", "time_vs_length")
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = subprocess.run([sys.executable, "-m", "benchmarks.speed", "--smoke", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out, result.stdout


def devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", devices())
def test_smoke_json_has_every_model_and_pass(smoke_run, device):
    out, _ = smoke_run
    payload = json.loads((out / f"smoke_{device}.json").read_text())
    records = payload["records"]
    for pass_name in ("forward", "forward_backward"):
        # float32 must time every model; other dtypes (CUDA bfloat16) may record why a baseline failed.
        timed = {r["model"] for r in records
                 if r["pass"] == pass_name and r["dtype"] == "float32" and r["status"] == "ok"}
        assert timed == set(MODEL_NAMES), pass_name
        assert {r["model"] for r in records if r["pass"] == pass_name} == set(MODEL_NAMES)
    assert all(r["median_ms"] > 0 for r in records if r["status"] == "ok")
    assert all(r["peak_memory_mib"] is not None for r in records
               if r["pass"] == "forward_backward" and r["status"] == "ok")
    assert all(r["work_ratio"] > 1 for r in records if r["model"].startswith("cwrnn"))
    assert payload["meta"]["threads"] >= 1 and payload["meta"]["memory"] and payload["meta"]["timing"]
    if device == "cpu":
        assert [t["key"] for t in payload["targets"]] == ["a", "b", "c"]


@pytest.mark.parametrize("device", devices())
def test_smoke_csv_has_every_model(smoke_run, device):
    out, _ = smoke_run
    with (out / f"smoke_{device}.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["model"] for row in rows} == set(MODEL_NAMES)
    assert {"median_ms", "speedup_vs_rnn", "speedup_vs_lstm", "work_ratio", "realised"} <= set(rows[0])


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="plots need matplotlib (requirements.txt)")
def test_smoke_writes_the_three_plots(smoke_run):
    out, _ = smoke_run
    for plot in PLOTS:
        png = out / f"smoke_cpu_float32_{plot}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_smoke_prints_tables_and_targets(smoke_run):
    _, stdout = smoke_run
    assert "CPU targets" in stdout and "theoretical work ratio" in stdout
    for name in ("CW-RNN kernel", "CW-RNN reference", "CW-RNN dense-masked", "nn.RNN", "nn.LSTM same params"):
        assert name in stdout


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
    torch.testing.assert_close(h_n, expected_h, rtol=0, atol=1e-12)


def test_clockwork_variants_agree_with_gradients():
    differences = max_differences(CHECK_CONFIG)
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
