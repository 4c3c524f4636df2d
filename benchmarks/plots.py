"""PNG plots from the records of one run (CPU, float32); `python -m benchmarks plots FILE.json`
redraws them from a result file.

- `..._targets.png`: the target configurations, each model side by side (kernel, dense-masked
  CW-RNN, nn.RNN, nn.LSTM): time per call, and speed-up over nn.RNN with the work ratio and the
  target marked; then the bidirectional row at target (a)'s size, each pass a group, no target.
- `..._speedup_vs_hidden.png`, `..._speedup_vs_modules.png`: speed-up over nn.RNN along a sweep.
- `..._time_vs_length.png`: time per call against sequence length, a panel per pass.

A colour per model, a line style per pass (forward solid, forward+backward dashed), filled markers
for warm medians and hollow ones for cold first calls, interquartile ranges as error bars or bands,
every tick labelled. The title says so when other processes competed for the cores.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

from .configs import FORMER_MODES, MODEL_LABELS, MODEL_NAMES, PASSES, PLANS, Config, Plan, Sweep  # noqa: E402
from .machine import busy_note, config_loads, plural  # noqa: E402
from .work import work_ratio  # noqa: E402

PASS_LABEL = {"forward": "forward", "forward_backward": "forward+backward"}
PASS_STYLE = {"forward": "-", "forward_backward": "--"}
MODEL_COLOR = dict(zip(MODEL_NAMES, ("tab:blue", "tab:purple", "tab:red", "tab:gray", "tab:green", "tab:olive")))
TARGET_MODELS = ("cwrnn", "cwrnn_naive", "rnn", "lstm")  # the bars of the targets plot
SWEEP_PLOTS = {  # axis: (file name, figure title, axis label)
    "hidden_size": ("speedup_vs_hidden", "Speed-up over nn.RNN (same H) vs hidden size", "hidden size H"),
    "num_modules": ("speedup_vs_modules", "Speed-up over nn.RNN (same H) vs number of modules",
                    "number of modules g (periods 1, 2, 4, ...)"),
    "steps": ("time_vs_length", "Time per call vs sequence length (thin dotted: proportional to T)",
              "sequence length T"),
}


def record_of(records: List[dict], config: Config, model: str, pass_name: str) -> Optional[dict]:
    return next((r for r in records if r["model"] == model and r["pass"] == pass_name and config.matches(r)
                 and r["median_ms"]), None)


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
    ax.yaxis.set_major_locator(FixedLocator(sorted(set(ax.get_yticks()) | {1.0})))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "nn.RNN = 1x" if v == 1 else f"{v:g}x"))


def speedup_spread(record: dict, rnn: dict):
    """Speed-up over nn.RNN with its interquartile spread: (nn.RNN's q1 / own q3, q3 / own q1)."""
    return rnn["q1_ms"] / record["q3_ms"], rnn["q3_ms"] / record["q1_ms"]


def plot_sweep(ax, sweep: Sweep, records: List[dict], passes: Sequence[str]) -> None:
    """Along sequence length: each model's time per call, IQR as a band, and a thin dotted line
    proportional to T through its first point. Along another axis: each model's speed-up over
    nn.RNN, IQR as error bars, and the theoretical work ratio. Cold first calls hollow."""
    timing = sweep.axis == "steps"
    xs = [getattr(c, sweep.axis) for c in sweep.configs]
    values, handles = ([], []) if timing else ([1.0], [])
    for model in [m for m in MODEL_NAMES if sweep.models is None or m in sweep.models]:
        for pass_name in passes:
            points = []
            for x, config in zip(xs, sweep.configs):
                own, rnn = record_of(records, config, model, pass_name), record_of(records, config, "rnn", pass_name)
                if own and timing:
                    points.append((x, own["median_ms"], own["q1_ms"], own["q3_ms"], own["cold_ms"]))
                elif own and rnn and model != "rnn":
                    points.append((x, own["speedup_vs_rnn"], *speedup_spread(own, rnn), own["speedup_vs_rnn_cold"]))
            if not points:
                continue
            x, y, low, high, cold = map(list, zip(*points))
            values += y + low + high + cold
            color, style = MODEL_COLOR[model], "o" + PASS_STYLE[pass_name]
            if timing:
                handles.append(ax.plot(x, y, style, color=color, label=MODEL_LABELS[model])[0])
                ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
                ax.plot(x, cold, "o", markerfacecolor="none", color=color, markersize=7)
                proportional = [y[0] * t / x[0] for t in xs]
                ax.plot(xs, proportional, ":", color=color, linewidth=0.8)
                values += proportional
            else:
                spread = [[a - b for a, b in zip(y, low)], [b - a for a, b in zip(y, high)]]
                handles.append(ax.errorbar(x, y, yerr=spread, fmt=style, color=color, capsize=3, markersize=5,
                                           label=f"{MODEL_LABELS[model]}, {PASS_LABEL[pass_name]}"))
                ax.plot(x, cold, style, markerfacecolor="none", color=color, markersize=6, linewidth=0.7)
    if timing:
        label_y_axis(ax, values, log_above=1.0)
        ax.set_ylabel(f"{PASS_LABEL[passes[0]]}: ms per call")
    else:
        theory = [work_ratio(c.periods, c.module_sizes, c.input_size, c.steps) for c in sweep.configs]
        handles.append(ax.plot(xs, theory, ":", color="black", linewidth=1.5, label="theoretical work ratio")[0])
        label_y_axis(ax, values + theory, "x")
        one_x_line(ax)
        ax.set_ylabel("speed-up over nn.RNN (same H)")
    if len(xs) > 1 and all(b == 2 * a for a, b in zip(xs, xs[1:])):  # doubling: a base-2 log axis
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel(SWEEP_PLOTS[sweep.axis][2])
    handles += [Line2D([], [], color="black", linestyle=PASS_STYLE[p], label=PASS_LABEL[p]) for p in passes]
    handles += [Line2D([], [], color="black", marker="o", linestyle="",
                       label=f"warm median ({'band' if timing else 'bars'}: IQR)"),
                Line2D([], [], color="black", marker="o", markerfacecolor="none", linestyle="",
                       label="cold: first call" + ("" if timing else " (thin line)"))]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def target_groups(plan: Plan, records: List[dict], minima: Dict[str, Optional[float]]) -> List[tuple]:
    """(label, config, pass, minimum) of each group of bars: every target, then each pass measured
    on the bidirectional row (no minimum; a file from before that row existed draws without it)."""
    def size(c: Config) -> str:
        return f"B={c.batch} T={c.steps} I={c.input_size}\nH={c.hidden_size} g={c.num_modules}"
    groups = [(f"({t.key}) {PASS_LABEL[t.pass_name]}\n{size(t.config)}", t.config, t.pass_name, minima.get(t.key))
              for t in plan.targets]
    config = plan.bidirectional
    return groups + [(f"bidirectional, {PASS_LABEL[p]}\n{size(config)}\n(no target)", config, p, None)
                     for p in PASSES if config and any(record_of(records, config, m, p) for m in TARGET_MODELS)]


def plot_targets(axes, groups: List[tuple], records: List[dict]) -> None:
    """Top: time per call of each model in each group (log, IQR bars, cold as hollow circles).
    Bottom: speed-up over nn.RNN, bars from the 1x line, with the work ratio and the target."""
    time_ax, speed_ax = axes
    models = [m for m in TARGET_MODELS if any(record_of(records, c, m, p) for _, c, p, _ in groups)]
    width = 0.8 / max(1, len(models))
    times, ratios, labelled = [], [1.0], set()
    for g, (_, config, pass_name, minimum) in enumerate(groups):
        # Bars centred on the models measured here (the bidirectional row may run fewer).
        present = [(m, record_of(records, config, m, pass_name)) for m in models]
        present = [(m, r) for m, r in present if r]
        for i, (model, r) in enumerate(present):
            x, color = g + (i - (len(present) - 1) / 2) * width, MODEL_COLOR[model]
            time_ax.bar(x, r["median_ms"], width, color=color, label=None if model in labelled else MODEL_LABELS[model],
                        yerr=[[r["median_ms"] - r["q1_ms"]], [r["q3_ms"] - r["median_ms"]]], capsize=2)
            labelled.add(model)
            time_ax.plot(x, r["cold_ms"], "o", markerfacecolor="none", color="black", markersize=6)
            times += [r["q1_ms"], r["q3_ms"], r["cold_ms"], r["median_ms"]]
            if model == "rnn":
                speed_ax.plot([x - width / 2, x + width / 2], [1.0, 1.0], color=color, linewidth=4)
            if model == "rnn" or r["speedup_vs_rnn"] is None:
                continue
            low, high = speedup_spread(r, record_of(records, config, "rnn", pass_name))
            speed = r["speedup_vs_rnn"]
            speed_ax.bar(x, speed - 1.0, width, bottom=1.0, color=color, yerr=[[speed - low], [high - speed]],
                         capsize=2)
            speed_ax.annotate(f"{speed:.3g}x", (x, speed), xytext=(0, 2 if speed >= 1 else -2),
                              textcoords="offset points", ha="center", va="bottom" if speed >= 1 else "top",
                              fontsize=7, bbox={"boxstyle": "square,pad=0.1", "facecolor": "white",
                                                "edgecolor": "none", "alpha": 0.8})
            ratios += [low, high]
    for g, (_, config, _, minimum) in enumerate(groups):
        # Per direction for a bidirectional row: both sides do twice the work, the ratio is the same.
        work = work_ratio(config.periods, config.module_sizes, config.input_size, config.steps)
        span = (g - 0.45, g + 0.45)
        speed_ax.plot(span, [work, work], ":", color="black", linewidth=1.5,
                      label="theoretical work ratio" if g == 0 else None)
        ratios.append(work)
        if minimum is not None:
            speed_ax.plot(span, [minimum] * 2, "-", color="tab:red", linewidth=1.5,
                          label="target (kernel)" if g == 0 else None)
            ratios.append(minimum)
    for ax in axes:
        ax.set_xticks(range(len(groups)), [group[0] for group in groups], fontsize=8)
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


def write_plots(plan: Plan, result: dict, out_dir: Path, prefix: str) -> List[Path]:
    """The targets plot and one PNG per sweep axis of a result (a result file's meta, records and
    targets); returns the paths written."""
    meta, records = result["meta"], [r for r in result["records"] if r["dtype"] == "float32"]
    capability = meta.get("cpu_capability", {}).get("kernel")  # files from before it was recorded have none
    subtitle = (f"{meta['device_name']}, float32, {plural(meta['threads'], 'thread')}, {meta['mode']} mode"
                + (f", CPU capability {capability}" if capability else ""))
    busy = busy_note(config_loads(records), meta["threads"])

    def save(fig, title: str, name: str) -> Path:
        fig.suptitle(f"{title}\n{subtitle}" + (f"\nBUSY MACHINE: {busy}" if busy else ""), fontsize=10,
                     color="tab:red" if busy else "black")
        fig.tight_layout()
        fig.savefig(out_dir / f"{prefix}_{name}.png", dpi=110)
        plt.close(fig)
        return out_dir / f"{prefix}_{name}.png"

    groups = target_groups(plan, records, {t["key"]: t["minimum"] for t in result.get("targets") or ()})
    fig, axes = plt.subplots(2, 1, figsize=(max(11, 1.9 * len(groups)), 9))
    plot_targets(axes, groups, records)
    extras = " and extra rows (no target)" if len(groups) > len(plan.targets) else ""
    paths = [save(fig, f"The target configurations{extras}: each model in fresh processes", "targets")]
    for axis in dict.fromkeys(sweep.axis for sweep in plan.sweeps):
        sweeps = [sweep for sweep in plan.sweeps if sweep.axis == axis]
        panels = [(p,) for p in PASSES] if axis == "steps" else [PASSES]  # the passes of each column
        fig, axes = plt.subplots(len(sweeps), len(panels), figsize=(9.5 * len(panels), 5 * len(sweeps)), squeeze=False)
        for row, sweep in zip(axes, sweeps):
            first = sweep.configs[0]
            fixed = {"batch": f"B={first.batch}", "steps": f"T={first.steps}", "input_size": f"I={first.input_size}",
                     "hidden_size": f"H={first.hidden_size}", "num_modules": f"g={first.num_modules}"}
            fixed.pop(axis)
            for ax, passes in zip(row, panels):
                plot_sweep(ax, sweep, records, passes)
                ax.set_title(" ".join(fixed.values()) + (f", {PASS_LABEL[passes[0]]}" if axis == "steps" else ""),
                             fontsize=9)
                ax.grid(True, alpha=0.3)
        paths.append(save(fig, SWEEP_PLOTS[axis][1], SWEEP_PLOTS[axis][0]))
    return paths


def main(argv=None) -> int:
    """Redraw the plots of a result file: `python -m benchmarks plots benchmarks/out/full_cpu.json`."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks plots", description=main.__doc__)
    parser.add_argument("json", type=Path, help="a <mode>_cpu.json written by python -m benchmarks speed")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out", metavar="DIR",
                        help="folder for the PNGs (default: benchmarks/out/, which git ignores)")
    args = parser.parse_args(argv)
    result = json.loads(args.json.read_text())
    meta = result["meta"]
    mode = meta["mode"] if "cpu_capability" in meta else FORMER_MODES.get(meta["mode"], meta["mode"])
    args.out.mkdir(parents=True, exist_ok=True)
    for path in write_plots(PLANS[mode], result, args.out, f"{args.json.stem}_float32"):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
