"""Smoke test of experiment 2 (spoken words) from the committed features, so it cannot rot."""
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `pytest tests` (not `python -m pytest`) does not add the repo root
    sys.path.insert(0, str(ROOT))

from experiments import spoken_words as sw  # noqa: E402
from experiments.common import forbidden_mask  # noqa: E402


def test_committed_data_matches_the_protocol():
    d = np.load(sw.DATA)
    assert d["frames"].shape[1] == 13 and len(d["words"]) == 25
    assert (~d["is_test"]).sum() == 125 and d["is_test"].sum() == 50
    # 5 training and 2 test voices, each speaking every word once.
    assert len(set(d["speakers"][~d["is_test"]])) == 5
    assert len(set(d["speakers"][d["is_test"]])) == 2
    train_frames = np.concatenate([d["frames"][d["offsets"][i]:d["offsets"][i + 1]]
                                   for i in np.flatnonzero(~d["is_test"])]).astype(np.float64)
    np.testing.assert_allclose(train_frames.mean(0), 0, atol=1e-2)
    np.testing.assert_allclose(train_frames.std(0), 1, atol=1e-2)


def test_paper_init_and_sizes():
    for kind in sw.MODELS:
        model = sw.WordClassifier(kind, sw.SIZES[kind][10000])
        sw.init_weights(model)
        assert abs(sw.count_params(model) - 10000) < 500
    rnn = model.rnn  # CW-RNN: disallowed blocks are zero after the N(0, 0.1^2) init
    assert torch.all(rnn.weight_hh_l0[forbidden_mask(rnn)] == 0)


def test_readout_is_the_last_valid_step():
    for kind in sw.MODELS:
        model = sw.WordClassifier(kind, 10).eval()
        x, lengths = torch.randn(9, 2, 13), torch.tensor([9, 5])
        padded = model(x, lengths)
        alone = model(x[:5, 1:], torch.tensor([5]))
        torch.testing.assert_close(padded[1:], alone)


def test_tiny_run(tmp_path):
    rows = sw.main(["--runs", "1", "--sizes", "500", "--max-epochs", "2", "--words", "5",
                    "--out", str(tmp_path)])
    assert [r["model"] for r in rows] == list(sw.MODELS)
    result = json.loads((tmp_path / "spoken_words.json").read_text())
    assert result["train_sequences"] == 25 and result["test_sequences"] == 10
    for run in result["runs"]:
        assert run["epochs"] <= 2 and 0 <= run["test_error"] <= 100
