"""The sequence-generation experiment (experiments/sequence_generation.py) runs end to end in a
tiny configuration, and the pieces its numbers rest on hold: targets, sizes, initialisation."""
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `pytest tests` (not `python -m pytest`) does not add the repo root
    sys.path.insert(0, str(ROOT))

from cwrnn_ext.layout import allowed_mask  # noqa: E402

from experiments import sequence_generation as sg  # noqa: E402
from experiments.music_targets import LENGTH, TARGET_NAMES, music_targets  # noqa: E402


def test_targets_deterministic_and_scaled():
    a, b = music_targets(), music_targets()
    assert a.shape == (len(TARGET_NAMES), LENGTH) == (5, 320)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.min(axis=1), -1.0)
    np.testing.assert_allclose(a.max(axis=1), 1.0)
    assert len({round(float(v), 6) for v in a.var(axis=1)}) == 5  # five different signals


def test_parameter_counts_match_budgets():
    # Table 1's hidden sizes give about 100 / 250 / 500 / 1000 parameters for every model
    for model in sg.MODELS:
        for budget, hidden in zip(sg.PARAM_BUDGETS, sg.HIDDEN_SIZES[model]):
            count = sg.parameter_count(sg.Generator(model, hidden))
            assert 0.8 * budget <= count <= 1.15 * budget, (model, hidden, count)


def test_init_and_training_keep_cwrnn_blocks_zero():
    net = sg.Generator("CW-RNN", 11)
    sg.init_weights(net)
    assert net.rnn.module_sizes == [2, 2, 1, 1, 1, 1, 1, 1, 1] and net.rnn.periods == sg.CW_PERIODS
    w = net.rnn.weight_hh_l0
    forbidden = ~allowed_mask(net.rnn.periods, net.rnn.module_sizes, w.device)
    assert torch.count_nonzero(w[forbidden]) == 0
    assert 0.05 < float(w.detach()[~forbidden].std()) < 0.2  # N(0, 0.1^2)
    cfg = sg.Config(epochs=3)
    target = torch.tensor(music_targets()[0], dtype=torch.float32)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.95, nesterov=True)
    for _ in range(cfg.epochs):
        opt.zero_grad()
        sg.loss_fn(net(), target, "sum").backward()
        opt.step()
    assert torch.count_nonzero(w[forbidden]) == 0


def test_lstm_forget_bias():
    net = sg.Generator("LSTM", 4)
    sg.init_weights(net)
    h = 4
    forget = net.rnn.bias_ih_l0[h:2 * h] + net.rnn.bias_hh_l0[h:2 * h]
    torch.testing.assert_close(forget, torch.full((h,), 5.0))


def test_main_tiny_run(tmp_path):
    result = sg.main(["--runs", "1", "--epochs", "5", "--sizes", "100", "--targets", "0", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "sequence_generation.json").read_text())
    assert (tmp_path / "sequence_generation.png").stat().st_size > 0
    for model in sg.MODELS:
        s = saved["summary"][model]["100"]
        assert s["n"] == 1 and s["diverged"] == 0 and np.isfinite(s["mean"]) and s["mean"] > 0
    assert len(result["records"]) == 3 and all(r["epochs_done"] == 5 for r in saved["records"])


def test_parallel_workers_give_the_same_records(tmp_path):
    args = ["--runs", "1", "--epochs", "3", "--sizes", "100", "--targets", "1", "--models", "SRN", "CW-RNN"]
    serial = sg.main(args + ["--workers", "1", "--out", str(tmp_path / "serial")])
    parallel = sg.main(args + ["--workers", "2", "--out", str(tmp_path / "parallel")])
    assert serial["records"] == parallel["records"]
