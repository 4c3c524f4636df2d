"""Experiment 1 of the Clockwork RNN paper: sequence generation.

A network with no input (input_size 0) and one linear output unit reading its whole hidden state
is trained to emit a 320-sample target; its weights are a compressed code of the target. SRN
(torch.nn.RNN, tanh), LSTM (torch.nn.LSTM, forget-gate bias 5) and CW-RNN (cwrnn_ext, 9 modules,
periods 1..256) at the paper's four parameter budgets, on the five synthetic targets of
`experiments.music_targets`. Metric: NMSE = MSE / variance of the target, after the last epoch.

    python -m experiments.sequence_generation                 # quick: 1 run per target (minutes)
    python -m experiments.sequence_generation --runs 100      # the paper's setting (hours)

Run time on 2 CPU cores: the quick default (60 trainings of 2000 epochs, one worker process per
core) took about 6 to 7 minutes; --runs 100 about 10 hours. Output: sequence_generation.json and
sequence_generation.png in experiments/out/ (ignored by git), or in --out DIR; --update-results
rewrites the committed experiments/results/ instead.

Where the paper is silent we choose (experiments/RESULTS.md has the runs behind them):
- loss = sum over the 320 steps of the squared error (`--reduction sum`): the paper's learning
  rates are for a summed error (the usual BPTT convention of its authors' toolkit); with a mean
  the steps are 320 times smaller and 2000 epochs barely move the SRN and LSTM;
- the gradient norm is clipped at 10 (`--clip 10`): with the summed loss, lr 3e-4 and momentum
  0.95 the SRN and CW-RNN blow up within ~150 epochs otherwise (the readout's curvature grows with
  320 x |h|^2 once the hidden units saturate); `--clip 0` turns it off.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

import cwrnn_ext

from .common import INIT_STD, LSTM_FORGET_BIAS, add_output_options, init_paper, make_parser, output_dir, progress
from .common import parameter_count as common_parameter_count
from .music_targets import LENGTH, TARGET_NAMES, music_targets

MODELS = ("SRN", "LSTM", "CW-RNN")
PARAM_BUDGETS = (100, 250, 500, 1000)
# Table 1 of the paper: hidden sizes per parameter budget
HIDDEN_SIZES = {"SRN": (9, 15, 22, 31), "LSTM": (4, 7, 10, 15), "CW-RNN": (11, 19, 27, 40)}
LEARNING_RATES = {"SRN": 3e-4, "LSTM": 3e-5, "CW-RNN": 3e-4}
CW_PERIODS = [2 ** i for i in range(9)]  # 1, 2, 4, ..., 256
MOMENTUM = 0.95

# Read off the paper (Section 4.1 and its box plots; the per-size values are approximate).
PAPER_NMSE = {
    "largest": {"SRN": (0.46, 0.08), "LSTM": (0.04, 0.01), "CW-RNN": (0.007, 0.004)},
    "per_size_approx": {"SRN": (0.47, 0.47, 0.47, 0.47), "LSTM": (0.068, 0.049, 0.043, 0.034),
                        "CW-RNN": (0.039, 0.016, 0.010, 0.006)},
}


@dataclass
class Config:
    runs: int = 1
    epochs: int = 2000
    sizes: tuple = PARAM_BUDGETS
    models: tuple = MODELS
    targets: tuple = tuple(range(len(TARGET_NAMES)))
    reduction: str = "sum"
    clip: float = 10.0
    seed: int = 0
    threads: int = 1
    workers: int = 1
    learning_rates: dict = field(default_factory=lambda: dict(LEARNING_RATES))


class Generator(nn.Module):
    """A recurrent layer driven by an empty input, and one linear unit reading the hidden state."""

    def __init__(self, model: str, hidden: int):
        super().__init__()
        self.model = model
        # torch.nn.RNN/LSTM refuse input_size=0; one input feature that is always 0 is the same
        # network (W_ih @ 0 = 0, and its gradient is 0), so they get that. The CW-RNN takes none.
        features = 0 if model == "CW-RNN" else 1
        if model == "SRN":
            self.rnn = nn.RNN(features, hidden, nonlinearity="tanh")
        elif model == "LSTM":
            self.rnn = nn.LSTM(features, hidden)
        elif model == "CW-RNN":
            self.rnn = cwrnn_ext.ClockworkRNN(features, hidden, periods=CW_PERIODS, num_modules=len(CW_PERIODS))
        else:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        self.readout = nn.Linear(hidden, 1)
        self.register_buffer("empty_input", torch.zeros(LENGTH, 1, features))

    def forward(self) -> torch.Tensor:
        hidden, _ = self.rnn(self.empty_input)  # zero initial state (hx=None); CW-RNN clock t0=0
        return self.readout(hidden).reshape(-1)


def init_weights(net: Generator) -> None:
    """The paper's init, biases included: with no input and a zero initial state, zero biases
    would leave the hidden state at exactly 0 forever (and its gradients too)."""
    init_paper(net, net.rnn, random_biases=True)


def parameter_count(net: Generator) -> int:
    """As Table 1 counts them; the dead input weights of SRN/LSTM (see Generator) do not count."""
    return common_parameter_count(net, net.rnn, skip=("rnn.weight_ih",))


def loss_fn(output: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    return nn.functional.mse_loss(output, target, reduction=reduction)


def nmse(output: torch.Tensor, target: torch.Tensor) -> float:
    return float(((output - target) ** 2).mean() / target.var(unbiased=False))


def train_one(model: str, hidden: int, target: torch.Tensor, seed: int, cfg: Config):
    """Train one network on one target; return (final NMSE, final output, per-epoch loss curve)."""
    torch.manual_seed(seed)
    net = Generator(model, hidden)
    init_weights(net)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.learning_rates[model], momentum=MOMENTUM, nesterov=True)
    curve = []
    for _ in range(cfg.epochs):  # one full-sequence update per epoch
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(), target, cfg.reduction)
        if not torch.isfinite(loss):
            break  # diverged: report as NaN rather than training on garbage
        loss.backward()
        if cfg.clip > 0:
            nn.utils.clip_grad_norm_(net.parameters(), cfg.clip)
        opt.step()
        curve.append(loss.item())
    with torch.no_grad():
        output = net()
    return nmse(output, target), output.numpy(), curve, parameter_count(net)


def job_list(cfg: Config):
    """Every (model, size index, target, run), in an order where progress is spread over models."""
    return [(m, s, t, r) for r in range(cfg.runs) for t in cfg.targets
            for s in range(len(PARAM_BUDGETS)) if PARAM_BUDGETS[s] in cfg.sizes for m in cfg.models]


def job_seed(cfg: Config, model: str, size_idx: int, target: int, run: int) -> int:
    return cfg.seed + 100_000 * run + 1000 * target + 10 * size_idx + MODELS.index(model)


def summarise(records, cfg: Config):
    """mean / std of NMSE per model and size, over runs x targets (diverged runs counted apart)."""
    summary = {}
    for model in cfg.models:
        summary[model] = {}
        for budget in cfg.sizes:
            vals = np.array([r["nmse"] for r in records if r["model"] == model and r["params_budget"] == budget])
            ok = vals[np.isfinite(vals)]
            summary[model][str(budget)] = {
                "hidden": HIDDEN_SIZES[model][PARAM_BUDGETS.index(budget)],
                "mean": float(ok.mean()) if ok.size else math.nan,
                "std": float(ok.std()) if ok.size else math.nan,
                "median": float(np.median(ok)) if ok.size else math.nan,
                "n": int(vals.size), "diverged": int(vals.size - ok.size)}
    return summary


def format_table(summary, cfg: Config) -> str:
    lines = ["| model | params | hidden | NMSE ours (mean ± std) | median | n | paper ≈ |",
             "|---|---|---|---|---|---|---|"]
    for model in cfg.models:
        for budget in cfg.sizes:
            s = summary[model][str(budget)]
            paper = PAPER_NMSE["per_size_approx"][model][PARAM_BUDGETS.index(budget)]
            if budget == 1000:
                mean, std = PAPER_NMSE["largest"][model]
                paper_text = f"{mean} ± {std}"
            else:
                paper_text = f"{paper}"
            div = f" ({s['diverged']} diverged)" if s["diverged"] else ""
            lines.append(f"| {model} | {budget} | {s['hidden']} | {s['mean']:.4f} ± {s['std']:.4f}{div} "
                         f"| {s['median']:.4f} | {s['n']} | {paper_text} |")
    return "\n".join(lines)


def plot_outputs(targets, examples, path: Path, target_idx: int) -> None:
    """One target with the three models' outputs (largest trained size, run 0)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(examples), 1, figsize=(8, 2.0 * len(examples)), sharex=True, squeeze=False)
    for ax, (label, out) in zip(axes[:, 0], examples.items()):
        ax.plot(targets[target_idx], color="0.6", lw=2, label="target")
        ax.plot(out, color="C3", lw=1, label=label)
        ax.set_ylim(-1.3, 1.3)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel(f"step (44.1 kHz) — target {TARGET_NAMES[target_idx]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_job(job, cfg: Config) -> tuple[dict, np.ndarray]:
    """Train the network of one job; return its record and its final output."""
    model, size_idx, target, run_idx = job
    torch.set_num_threads(cfg.threads)  # the tiny per-step matmuls gain nothing from threads
    hidden = HIDDEN_SIZES[model][size_idx]
    target_tensor = torch.tensor(music_targets()[target], dtype=torch.float32)
    score, output, curve, n_params = train_one(model, hidden, target_tensor,
                                               job_seed(cfg, model, size_idx, target, run_idx), cfg)
    record = {"model": model, "params_budget": PARAM_BUDGETS[size_idx], "hidden": hidden,
              "params": n_params, "target": TARGET_NAMES[target], "run": run_idx,
              "nmse": score, "final_loss": curve[-1] if curve else math.nan, "epochs_done": len(curve)}
    return record, output


def run_jobs(jobs, cfg: Config):
    """Yield (record, output) per job, in job order; jobs are independent, so with workers > 1
    they run in that many processes (spawned: forking a process that has used OpenMP can hang)."""
    if cfg.workers <= 1:
        yield from (run_job(job, cfg) for job in jobs)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=cfg.workers, mp_context=context) as pool:
        yield from pool.map(run_job, jobs, [cfg] * len(jobs))


def run(cfg: Config, out_dir: Path) -> dict:
    targets = music_targets()
    largest = max(cfg.sizes)
    records, examples = [], {}
    jobs = job_list(cfg)
    start = time.time()
    for record, output in progress(run_jobs(jobs, cfg), len(jobs), "trainings"):
        records.append(record)
        if record["params_budget"] == largest and record["target"] == TARGET_NAMES[cfg.targets[0]] \
                and record["run"] == 0:
            examples[f"{record['model']} (H={record['hidden']}, NMSE {record['nmse']:.3f})"] = output
    wall = time.time() - start

    summary = summarise(records, cfg)
    result = {"config": {**asdict(cfg), "hidden_sizes": HIDDEN_SIZES,
                         "momentum": MOMENTUM, "nesterov": True, "init_std": INIT_STD,
                         "lstm_forget_bias": LSTM_FORGET_BIAS, "cw_periods": CW_PERIODS,
                         "target_names": TARGET_NAMES},
              "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": cfg.threads},
              "wall_seconds": wall, "summary": summary, "paper": PAPER_NMSE, "records": records}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sequence_generation.json").write_text(json.dumps(result, indent=1))
    if examples:
        plot_outputs(targets, examples, out_dir / "sequence_generation.png", cfg.targets[0])
    print(format_table(summary, cfg))
    print(f"wall time {wall:.0f} s; results in {out_dir}")
    return result


def build_parser():
    p = make_parser("sequence_generation", __doc__)
    p.add_argument("--runs", type=int, default=1, help="runs (seeds) per model, size and target; paper: 100")
    p.add_argument("--epochs", type=int, default=2000, help="full-sequence updates per run (paper: 2000)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(PARAM_BUDGETS), choices=PARAM_BUDGETS,
                   help="parameter budgets (Table 1 gives the hidden sizes)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="models to train")
    p.add_argument("--targets", type=int, nargs="+", default=list(range(len(TARGET_NAMES))),
                   help=f"target indices into {TARGET_NAMES}")
    p.add_argument("--reduction", choices=("sum", "mean"), default="sum", help="MSE over the 320 steps")
    p.add_argument("--lr", nargs=2, action="append", default=[], metavar=("MODEL", "RATE"),
                   help=f"override a learning rate, e.g. --lr LSTM 3e-4 (default: the paper's, {LEARNING_RATES})")
    p.add_argument("--clip", type=float, default=10.0, help="gradient-norm clip; 0 = none")
    p.add_argument("--seed", type=int, default=0, help="base seed; each training derives its own from it (model, size, target, run)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads per training")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="trainings run side by side in separate processes (default: one per CPU core, "
                        "here %(default)s)")
    add_output_options(p, "sequence_generation.json and .png")
    return p


def parse_args(argv=None) -> tuple[Config, Path]:
    p = build_parser()
    a = p.parse_args(argv)
    for model, _ in a.lr:
        if model not in MODELS:
            p.error(f"--lr: model must be one of {MODELS}, got {model!r}")
    cfg = Config(runs=a.runs, epochs=a.epochs, sizes=tuple(sorted(a.sizes)), models=tuple(a.models),
                 targets=tuple(a.targets), reduction=a.reduction, clip=a.clip, seed=a.seed, threads=a.threads,
                 workers=a.workers, learning_rates={**LEARNING_RATES, **{m: float(r) for m, r in a.lr}})
    return cfg, output_dir(a)


def main(argv=None) -> dict:
    cfg, out = parse_args(argv)
    return run(cfg, out)


if __name__ == "__main__":
    main()
