"""PNG plots from the records of one device and dtype: speed-up vs hidden size, speed-up vs number
of modules, time vs sequence length. One panel per sweep (e.g. batch 32 and batch 1)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from .configs import PASSES, Config, Sweep, with_dtype  # noqa: E402
from .models import CLOCKWORK_MODELS, MODEL_LABELS, MODEL_NAMES  # noqa: E402
from .work import work_ratio  # noqa: E402

PASS_LABEL = {"forward": "forward", "forward_backward": "fwd+bwd"}
PASS_STYLE = {"forward": "-", "forward_backward": "--"}
MODEL_COLOR = dict(zip(MODEL_NAMES, ("tab:blue", "tab:purple", "tab:red", "tab:orange", "tab:green",
                                     "tab:olive")))
AXIS_LABEL = {"hidden_size": "hidden size H", "num_modules": "number of modules g",
              "steps": "sequence length T"}
FILE_STEM = {"hidden_size": "speedup_vs_hidden", "num_modules": "speedup_vs_modules",
             "steps": "time_vs_length"}
FIGURE_TITLE = {"hidden_size": "Speed-up over nn.RNN vs hidden size",
                "num_modules": "Speed-up over nn.RNN vs number of modules (exponential periods)",
                "steps": "Time vs sequence length (dotted: proportional to T)"}


def record_of(records: List[dict], config: Config, model: str, pass_name: str):
    for r in records:
        if r["model"] == model and r["pass"] == pass_name and config.matches(r):
            return r
    return None


def panel_title(sweep: Sweep) -> str:
    """The fixed sizes of a sweep, e.g. 'B=32 T=256 I=64 g=8'."""
    first = sweep.configs[0]
    fixed = {"batch": f"B={first.batch}", "steps": f"T={first.steps}",
             "input_size": f"I={first.input_size}", "hidden_size": f"H={first.hidden_size}",
             "num_modules": f"g={first.num_modules}"}
    fixed.pop(sweep.axis)
    return " ".join(fixed.values())


def plot_speedups(ax, sweep: Sweep, records: List[dict]) -> None:
    """CW-RNN models' speed-up over nn.RNN per pass, and the theoretical work ratio (dotted)."""
    xs = [getattr(c, sweep.axis) for c in sweep.configs]
    ratios = []
    for model in CLOCKWORK_MODELS:
        for pass_name in PASSES:
            rows = [record_of(records, c, model, pass_name) for c in sweep.configs]
            points = [(x, r["speedup_vs_rnn"]) for x, r in zip(xs, rows) if r and r["speedup_vs_rnn"]]
            if points:
                ratios += [y for _, y in points]
                ax.plot(*zip(*points), PASS_STYLE[pass_name], marker="o", color=MODEL_COLOR[model],
                        label=f"{MODEL_LABELS[model]}, {PASS_LABEL[pass_name]}")
    theory = [work_ratio(c.periods, c.module_sizes, c.input_size, c.steps) for c in sweep.configs]
    ratios += theory
    ax.plot(xs, theory, ":", color="black", label="theoretical work ratio")
    ax.axhline(1.0, color="gray", linewidth=0.8)
    if ratios and max(ratios) / min(ratios) > 30:
        ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xlabel(AXIS_LABEL[sweep.axis])
    ax.set_ylabel("speed-up over nn.RNN (same H)")


def plot_times(ax, sweep: Sweep, records: List[dict], pass_name: str) -> None:
    """Median time vs T per model on log-log axes; the thin dotted line through each model's first
    point is exact proportionality to T, so a linear-time model's points lie on it."""
    xs = [getattr(c, sweep.axis) for c in sweep.configs]
    for model in MODEL_NAMES:
        rows = [record_of(records, c, model, pass_name) for c in sweep.configs]
        points = [(x, r["median_ms"]) for x, r in zip(xs, rows) if r and r["median_ms"]]
        if not points:
            continue
        ax.plot(*zip(*points), marker="o", color=MODEL_COLOR[model], label=MODEL_LABELS[model])
        x0, y0 = points[0]
        ax.plot(xs, [y0 * x / x0 for x in xs], ":", color=MODEL_COLOR[model], linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel(AXIS_LABEL[sweep.axis])
    ax.set_ylabel(f"{PASS_LABEL[pass_name]} median time (ms)")


def write_plots(sweeps: Sequence[Sweep], records: List[dict], dtype: str, out_dir: Path, prefix: str,
                subtitle: str) -> List[Path]:
    """One PNG per sweep axis; returns the paths written."""
    by_axis: Dict[str, List[Sweep]] = {}
    for sweep in sweeps:
        typed = Sweep(sweep.axis, tuple(with_dtype(c, dtype) for c in sweep.configs), sweep.models)
        by_axis.setdefault(sweep.axis, []).append(typed)
    paths = []
    for axis, axis_sweeps in by_axis.items():
        timing = axis == "steps"
        columns = len(PASSES) if timing else 1
        fig, axes = plt.subplots(len(axis_sweeps), columns, figsize=(6.5 * columns, 4.5 * len(axis_sweeps)),
                                 squeeze=False)
        for row, sweep in enumerate(axis_sweeps):
            if timing:
                for col, pass_name in enumerate(PASSES):
                    plot_times(axes[row][col], sweep, records, pass_name)
                    axes[row][col].set_title(f"{panel_title(sweep)}, {PASS_LABEL[pass_name]}")
            else:
                plot_speedups(axes[row][0], sweep, records)
                axes[row][0].set_title(panel_title(sweep))
            for ax in axes[row]:
                ax.grid(True, alpha=0.3)
                ax.legend(fontsize=7)
        fig.suptitle(f"{FIGURE_TITLE[axis]}\n{subtitle}", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"{prefix}_{FILE_STEM[axis]}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
