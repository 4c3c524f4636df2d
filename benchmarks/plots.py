"""PNG plots from the records of one run (CPU, float32).

- `..._targets.png`: the target configurations, each model side by side (kernel, dense-masked
  CW-RNN, nn.RNN, nn.LSTM): time per call, and speed-up over nn.RNN with the work ratio and the
  target marked; then the plan's extra rows (the bidirectional layer at target (a)'s size), each
  pass a group, with no target.
- `..._speedup_vs_hidden.png`, `..._speedup_vs_modules.png`: speed-up over nn.RNN along a sweep.
- `..._time_vs_length.png`: time per call against sequence length.

A colour per model, a line style per pass (forward solid, forward+backward dashed), filled markers
for warm medians and hollow ones for cold first calls, interquartile ranges as error bars or bands,
every tick labelled. The title says so when other processes competed for the cores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

from .configs import FORMER_MODES, PASSES, PLANS, Config, Plan, Sweep  # noqa: E402
from .models import MODEL_LABELS, MODEL_NAMES  # noqa: E402
from .work import work_ratio  # noqa: E402

PASS_LABEL = {"forward": "forward", "forward_backward": "forward+backward"}
PASS_STYLE = {"forward": "-", "forward_backward": "--"}
MODEL_COLOR = dict(zip(MODEL_NAMES, ("tab:blue", "tab:purple", "tab:red", "tab:gray", "tab:green",
                                     "tab:olive")))
TARGET_MODELS = ("cwrnn", "cwrnn_naive", "rnn", "lstm")  # the bars of the targets plot
AXIS_LABEL = {"hidden_size": "hidden size H", "num_modules": "number of modules g (periods 1, 2, 4, ...)",
              "steps": "sequence length T"}
FILE_STEM = {"hidden_size": "speedup_vs_hidden", "num_modules": "speedup_vs_modules",
             "steps": "time_vs_length"}
FIGURE_TITLE = {"hidden_size": "Speed-up over nn.RNN (same H) vs hidden size",
                "num_modules": "Speed-up over nn.RNN (same H) vs number of modules",
                "steps": "Time per call vs sequence length (thin dotted: proportional to T)"}


def record_of(records: List[dict], config: Config, model: str, pass_name: str) -> Optional[dict]:
    for r in records:
        if r["model"] == model and r["pass"] == pass_name and config.matches(r) and r["median_ms"]:
            return r
    return None


def nice_ticks(low: float, high: float) -> List[float]:
    """1-2-5 ticks covering [low, high] (for log axes, so every tick can carry a label)."""
    ticks, exponent = [], math.floor(math.log10(low))
    while True:
        for mantissa in (1, 2, 5):
            tick = mantissa * 10.0 ** exponent
            if tick > high * 1.0001:
                return [round(t, 12) for t in ticks] + [round(tick, 12)]
            if not ticks and tick * 2.5 < low:  # start just below the data
                continue
            ticks.append(tick)
        exponent += 1


def label_y_axis(ax, values: Sequence[float], suffix: str = "", log_above: float = 8.0) -> None:
    """A log scale with a labelled tick at every 1-2-5 step when the values span more than
    `log_above`, else a linear scale from 0."""
    values = [v for v in values if v and v > 0]
    if not values:
        return
    low, high = min(values), max(values)
    if high / low > log_above:
        ax.set_yscale("log")
        ticks = nice_ticks(low, high)
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_ylim(ticks[0] / 1.15, ticks[-1] * 1.15)
    else:
        ax.set_ylim(0, high * 1.15)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}{suffix}"))


def one_x_line(ax) -> None:
    """The speed-up of 1: nn.RNN itself, labelled on the axis."""
    ax.axhline(1.0, color="black", linewidth=1.0)
    ticks = sorted(set(ax.get_yticks()) | {1.0})
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "nn.RNN = 1x" if v == 1 else f"{v:g}x"))


def sweep_x_axis(ax, xs: Sequence[int], label: str) -> None:
    """Doubling values (128, 256, 512) on a base-2 log axis, others linear; a labelled tick at each."""
    if len(xs) > 1 and all(b == 2 * a for a, b in zip(xs, xs[1:])):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel(label)


def sweep_models(sweep: Sweep) -> List[str]:
    """The models the sweep is for (a sweep point that is also a target has more, not plotted here)."""
    return [m for m in MODEL_NAMES if sweep.models is None or m in sweep.models]


def speedup_spread(record: dict, rnn: dict):
    """Speed-up over nn.RNN with its interquartile spread: (nn.RNN's q1 / own q3, q3 / own q1)."""
    return rnn["q1_ms"] / record["q3_ms"], rnn["q3_ms"] / record["q1_ms"]


def style_legend(ax, handles, passes=PASSES, spread: str = "bars", cold: str = "cold: first call") -> None:
    """The plot's own entries plus the keys for line style and marker fill, beside the axes."""
    handles = list(handles)
    handles += [Line2D([], [], color="black", linestyle=PASS_STYLE[p], label=PASS_LABEL[p]) for p in passes]
    handles += [Line2D([], [], color="black", marker="o", linestyle="", label=f"warm median ({spread}: IQR)"),
                Line2D([], [], color="black", marker="o", markerfacecolor="none", linestyle="", label=cold)]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def plot_speedups(ax, sweep: Sweep, records: List[dict]) -> None:
    """Every model's speed-up over nn.RNN per pass, warm with IQR and cold, and the work ratio."""
    xs = [getattr(c, sweep.axis) for c in sweep.configs]
    values, handles = [], []
    for model in sweep_models(sweep):
        if model == "rnn":
            continue
        for pass_name in PASSES:
            points = []
            for x, config in zip(xs, sweep.configs):
                own, rnn = record_of(records, config, model, pass_name), record_of(records, config, "rnn", pass_name)
                if own and rnn:
                    low, high = speedup_spread(own, rnn)
                    points.append((x, own["speedup_vs_rnn"], low, high, own["speedup_vs_rnn_cold"]))
            if not points:
                continue
            x, y, low, high, cold = zip(*points)
            values += list(y) + list(low) + list(high) + [c for c in cold if c]
            line = ax.errorbar(x, y, yerr=[[a - b for a, b in zip(y, low)], [b - a for a, b in zip(y, high)]],
                               fmt="o" + PASS_STYLE[pass_name], color=MODEL_COLOR[model], capsize=3,
                               markersize=5, label=f"{MODEL_LABELS[model]}, {PASS_LABEL[pass_name]}")
            handles.append(line)
            ax.plot(x, cold, "o" + PASS_STYLE[pass_name], markerfacecolor="none", color=MODEL_COLOR[model],
                    markersize=6, linewidth=0.7)
    theory = [work_ratio(c.periods, c.module_sizes, c.input_size, c.steps) for c in sweep.configs]
    values += theory + [1.0]
    handles.append(ax.plot(xs, theory, ":", color="black", linewidth=1.5, label="theoretical work ratio")[0])
    label_y_axis(ax, values, "x")
    one_x_line(ax)
    sweep_x_axis(ax, xs, AXIS_LABEL[sweep.axis])
    ax.set_ylabel("speed-up over nn.RNN (same H)")
    style_legend(ax, handles, cold="cold: first call (thin line)")


def plot_times(ax, sweep: Sweep, records: List[dict], pass_name: str) -> None:
    """Median time vs T per model with its IQR as a band, cold first calls hollow; the thin dotted
    line through each model's first point is exact proportionality to T."""
    xs = [getattr(c, sweep.axis) for c in sweep.configs]
    values, handles = [], []
    for model in sweep_models(sweep):
        rows = [(x, record_of(records, c, model, pass_name)) for x, c in zip(xs, sweep.configs)]
        rows = [(x, r) for x, r in rows if r]
        if not rows:
            continue
        x = [x for x, _ in rows]
        median, q1, q3 = ([r[key] for _, r in rows] for key in ("median_ms", "q1_ms", "q3_ms"))
        cold = [r["cold_ms"] for _, r in rows]
        values += median + q1 + q3 + cold
        color = MODEL_COLOR[model]
        handles.append(ax.plot(x, median, "o" + PASS_STYLE[pass_name], color=color, label=MODEL_LABELS[model])[0])
        ax.fill_between(x, q1, q3, color=color, alpha=0.2, linewidth=0)
        ax.plot(x, cold, "o", markerfacecolor="none", color=color, markersize=7)
        ax.plot(xs, [median[0] * t / x[0] for t in xs], ":", color=color, linewidth=0.8)
        values += [median[0] * t / x[0] for t in xs]
    label_y_axis(ax, values, log_above=1.0)
    sweep_x_axis(ax, xs, AXIS_LABEL[sweep.axis])
    ax.set_ylabel(f"{PASS_LABEL[pass_name]}: ms per call")
    style_legend(ax, handles, (pass_name,), "band")


def panel_title(sweep: Sweep) -> str:
    """The fixed sizes of a sweep, e.g. 'B=32 T=256 I=64 g=8'."""
    first = sweep.configs[0]
    fixed = {"batch": f"B={first.batch}", "steps": f"T={first.steps}",
             "input_size": f"I={first.input_size}", "hidden_size": f"H={first.hidden_size}",
             "num_modules": f"g={first.num_modules}"}
    fixed.pop(sweep.axis)
    return " ".join(fixed.values())


@dataclass(frozen=True)
class Group:
    """One group of bars in the targets plot: a target, or an extra row's pass (no minimum)."""
    label: str
    config: Config
    pass_name: str
    minimum: Optional[float]


def size_label(config: Config) -> str:
    return f"B={config.batch} T={config.steps} I={config.input_size}\nH={config.hidden_size} g={config.num_modules}"


def target_groups(plan: Plan, records: List[dict], minima: Dict[str, Optional[float]]) -> List[Group]:
    """Every target (with its minimum, if any), then each extra row's passes that were measured (a
    result file from before an extra row existed draws without it)."""
    groups = [Group(f"({t.key}) {PASS_LABEL[t.pass_name]}\n{size_label(t.config)}", t.config,
                    t.pass_name, minima.get(t.key)) for t in plan.targets]
    for extra in plan.extras:
        config = extra.config
        for pass_name in PASSES:
            if any(record_of(records, config, m, pass_name) for m in TARGET_MODELS):
                groups.append(Group(f"{extra.name}, {PASS_LABEL[pass_name]}\n{size_label(config)}\n(no target)",
                                    config, pass_name, None))
    return groups


def plot_targets(axes, plan: Plan, records: List[dict], minima: Dict[str, Optional[float]]) -> None:
    """Top: time per call of each model at each target and extra row (log, IQR bars, cold as
    hollow circles). Bottom: speed-up over nn.RNN, bars from the 1x line, with the work ratio and
    the target."""
    time_ax, speed_ax = axes
    groups = target_groups(plan, records, minima)
    models = [m for m in TARGET_MODELS if any(record_of(records, c.config, m, c.pass_name) for c in groups)]
    width = 0.8 / max(1, len(models))
    times, ratios, labelled = [], [1.0], set()
    for g, group in enumerate(groups):
        config = group.config
        # Bars centred on the models measured here (an extra row may run fewer); a colour per model.
        present = [m for m in models if record_of(records, config, m, group.pass_name)]
        for i, model in enumerate(present):
            r = record_of(records, config, model, group.pass_name)
            x = g + (i - (len(present) - 1) / 2) * width
            color = MODEL_COLOR[model]
            label = None if model in labelled else MODEL_LABELS[model]
            labelled.add(model)
            time_ax.bar(x, r["median_ms"], width, color=color, label=label,
                        yerr=[[r["median_ms"] - r["q1_ms"]], [r["q3_ms"] - r["median_ms"]]], capsize=2)
            time_ax.plot(x, r["cold_ms"], "o", markerfacecolor="none", color="black", markersize=6)
            times += [r["q1_ms"], r["q3_ms"], r["cold_ms"], r["median_ms"]]
            if model == "rnn":
                speed_ax.plot([x - width / 2, x + width / 2], [1.0, 1.0], color=color, linewidth=4)
            if model == "rnn" or r["speedup_vs_rnn"] is None:
                continue
            rnn = record_of(records, config, "rnn", group.pass_name)
            low, high = speedup_spread(r, rnn)
            speed = r["speedup_vs_rnn"]
            speed_ax.bar(x, speed - 1.0, width, bottom=1.0, color=color,
                         yerr=[[speed - low], [high - speed]], capsize=2)
            speed_ax.annotate(f"{speed:.3g}x", (x, speed), xytext=(0, 2 if speed >= 1 else -2),
                              textcoords="offset points", ha="center", va="bottom" if speed >= 1 else "top",
                              fontsize=7, bbox={"boxstyle": "square,pad=0.1", "facecolor": "white",
                                                "edgecolor": "none", "alpha": 0.8})
            ratios += [low, high]
    for g, group in enumerate(groups):
        config = group.config
        # Per direction for a bidirectional row: both sides do twice the work, the ratio is the same.
        work = work_ratio(config.periods, config.module_sizes, config.input_size, config.steps)
        span = (g - 0.45, g + 0.45)
        speed_ax.plot(span, [work, work], ":", color="black", linewidth=1.5,
                      label="theoretical work ratio" if g == 0 else None)
        ratios.append(work)
        if group.minimum is not None:
            speed_ax.plot(span, [group.minimum] * 2, "-", color="tab:red", linewidth=1.5,
                          label="target (kernel)" if g == 0 else None)
            ratios.append(group.minimum)
    for ax in axes:
        ax.set_xticks(range(len(groups)), [group.label for group in groups], fontsize=8)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.grid(True, axis="y", alpha=0.3)
    label_y_axis(time_ax, times, log_above=1.0)
    time_ax.set_ylabel("ms per call (warm median, IQR bars)")
    label_y_axis(speed_ax, ratios, "x", log_above=1.0)
    one_x_line(speed_ax)
    speed_ax.set_ylabel("speed-up over nn.RNN (warm, IQR bars)")
    handles = time_ax.get_legend_handles_labels()[0] + speed_ax.get_legend_handles_labels()[0]
    handles.append(Line2D([], [], color="black", marker="o", markerfacecolor="none", linestyle="",
                          label="cold: first call"))
    time_ax.legend(handles=handles, fontsize=7, ncol=len(handles), loc="lower left",
                   bbox_to_anchor=(0.0, 1.01), borderaxespad=0)


def plot_subtitle(device_name: str, dtype: str, threads: int, mode: str, capability: Optional[str]) -> str:
    return (f"{device_name}, {dtype}, {threads} thread{'s' if threads != 1 else ''}, {mode} mode"
            + (f", CPU capability {capability}" if capability else ""))


def figure_title(title: str, subtitle: str, busy: Optional[str]) -> str:
    return f"{title}\n{subtitle}" + (f"\nBUSY MACHINE: {busy}" if busy else "")


def write_plots(plan: Plan, records: List[dict], out_dir: Path, prefix: str, subtitle: str,
                busy: Optional[str], minima: Dict[str, Optional[float]]) -> List[Path]:
    """The targets plot (`minima`: target key -> required speed-up or None) and one PNG per sweep
    axis; returns the paths written."""
    paths = []
    if plan.targets:
        groups = len(target_groups(plan, records, minima))
        fig, axes = plt.subplots(2, 1, figsize=(max(11, 1.9 * groups), 9))
        plot_targets(axes, plan, records, minima)
        extras = " and extra rows (no target)" if groups > len(plan.targets) else ""
        fig.suptitle(figure_title(f"The target configurations{extras}: each model in fresh processes",
                                  subtitle, busy), fontsize=10, color="tab:red" if busy else "black")
        paths.append(save(fig, out_dir / f"{prefix}_targets.png"))
    by_axis: Dict[str, List[Sweep]] = {}
    for sweep in plan.sweeps:
        by_axis.setdefault(sweep.axis, []).append(sweep)
    for axis, axis_sweeps in by_axis.items():
        timing = axis == "steps"
        columns = len(PASSES) if timing else 1
        fig, axes = plt.subplots(len(axis_sweeps), columns, figsize=(9.5 * columns, 5 * len(axis_sweeps)),
                                 squeeze=False)
        for row, sweep in enumerate(axis_sweeps):
            if timing:
                for col, pass_name in enumerate(PASSES):
                    plot_times(axes[row][col], sweep, records, pass_name)
                    axes[row][col].set_title(f"{panel_title(sweep)}, {PASS_LABEL[pass_name]}", fontsize=9)
            else:
                plot_speedups(axes[row][0], sweep, records)
                axes[row][0].set_title(panel_title(sweep), fontsize=9)
            for ax in axes[row]:
                ax.grid(True, alpha=0.3)
        fig.suptitle(figure_title(FIGURE_TITLE[axis], subtitle, busy), fontsize=10,
                     color="tab:red" if busy else "black")
        paths.append(save(fig, out_dir / f"{prefix}_{FILE_STEM[axis]}.png"))
    return paths


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    """Redraw the plots of a result file: `python -m benchmarks plots benchmarks/out/full_cpu.json`."""
    import argparse
    import json

    from .machine import busy_note, config_loads

    parser = argparse.ArgumentParser(prog="python -m benchmarks plots", description=main.__doc__)
    parser.add_argument("json", type=Path, help="a <mode>_cpu.json written by python -m benchmarks speed")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out", metavar="DIR",
                        help="folder for the PNGs (default: benchmarks/out/, which git ignores)")
    args = parser.parse_args(argv)
    payload = json.loads(args.json.read_text())
    meta, records = payload["meta"], [r for r in payload["records"] if r["dtype"] == "float32"]
    args.out.mkdir(parents=True, exist_ok=True)
    capability = meta.get("cpu_capability", {}).get("kernel")
    mode = meta["mode"] if capability else FORMER_MODES.get(meta["mode"], meta["mode"])
    subtitle = plot_subtitle(meta["device_name"], "float32", meta["threads"], meta["mode"], capability)
    busy = busy_note(config_loads(records), meta["threads"])
    minima = {t["key"]: t["minimum"] for t in payload.get("targets") or ()}
    for path in write_plots(PLANS[mode], records, args.out, f"{args.json.stem}_float32", subtitle, busy, minima):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
