"""CLI: `python -m benchmarks.speed [--smoke | --quick | --full | --long] [options]`.

Times the CW-RNN kernel against nn.RNN (and, with --full or --long, the pure-PyTorch reference, a
naive dense-masked CW-RNN, nn.LSTM of the same hidden size and of the same parameter count, also
as bidirectional layers, over sweeps), each model and pass in fresh processes (warm median and
cold first call). Prints each CPU target's verdict as soon as its configuration is measured, the
tables, and writes JSON, CSV and PNG plots to benchmarks/out/ (ignored by git) unless --out or
--update-results says otherwise. Progress goes to stderr. Ctrl-C or SIGTERM stops it with the
results so far saved and summarised in one line. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import List, Optional

import torch

from . import streaming
from .checks import check_clockwork_variants
from .configs import DEVICE_DTYPES, PLANS, Plan
from .load import available_cores, busy_note, config_loads, load_average, pre_run_warning, threshold
from .machine import (CAPABILITY_ENV, capability_applied, cpu_capabilities, cpu_model, cpu_mhz,
                      requested_capability, result_stem, run_metadata)
from .memory import MEMORY_METHOD
from .models import MODEL_NAMES
from .progress import clock
from .report import LEGEND, config_table, evaluate_targets, target_line, targets_text, verdicts_in_one_line
from .runner import Settings, run_plan
from .timing import TIMING_METHOD, configure_threads, disable_tf32

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out"  # ignored by git
RESULTS_DIR = HERE / "results"  # committed: changed only with --update-results
STREAMING_MODE = {"smoke": "smoke", "full": "quick", "long": "full"}  # the section's plan in each mode


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", dest="mode", action="store_const", const="smoke",
                      help="tiny sizes, under a minute: checks that everything runs")
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="(default) the five CPU targets, kernel vs nn.RNN: a few minutes on 2 idle cores")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="the targets with every model, a bidirectional row, small sweeps with plots, "
                           "streaming: tens of minutes on 2 cores")
    mode.add_argument("--long", dest="mode", action="store_const", const="long",
                      help="every model over hidden size, modules and length, batch 32 and 1 (hours)")
    parser.set_defaults(mode="quick")
    parser.add_argument("--threads", type=int, default=None,
                        help=f"intra-op threads, the same for every model (default: all cores, "
                             f"{available_cores()} here; --smoke: 1, so a busy machine cannot stall it)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto (default): CPU, and CUDA too when available")
    parser.add_argument("--capability", choices=tuple(CAPABILITY_ENV), default=None,
                        help="run everything limited to this instruction set (ATEN_CPU_CAPABILITY, "
                             "MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA set for every process): what an "
                             "AVX2 or a baseline x86-64 machine would get (default: the machine's best)")
    parser.add_argument("--models", default=",".join(MODEL_NAMES),
                        help="comma-separated subset of: " + ", ".join(MODEL_NAMES))
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=None, metavar="DIR",
                       help="output folder (default: benchmarks/out/, which git ignores)")
    where.add_argument("--update-results", action="store_true",
                       help="write to benchmarks/results/, the committed reference results that "
                            "benchmarks/RESULTS.md discusses, instead of --out (not with --smoke)")
    parser.add_argument("--min-run-time", type=float, default=None,
                        help="seconds of timed calls per model and pass, over all rounds (default: per mode)")
    parser.add_argument("--no-streaming", dest="streaming", action="store_false",
                        help="skip the streaming section of --smoke, --full and --long (one step and "
                             "short chunks against nn.RNNCell / nn.LSTMCell; python -m benchmarks.streaming "
                             "runs it alone)")
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="skip the peak-memory measurement of forward+backward")
    args = parser.parse_args(argv)
    args.models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in args.models if m not in MODEL_NAMES]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")
    if args.threads is None:
        args.threads = 1 if args.mode == "smoke" else available_cores()
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False")
    if args.update_results and args.mode == "smoke":
        parser.error("--update-results with --smoke: smoke numbers are not results")
    args.out = RESULTS_DIR if args.update_results else (DEFAULT_OUT if args.out is None else args.out)
    return args


def plots_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def devices_to_run(choice: str) -> List[str]:
    if choice == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [choice]


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else cpu_model()


def metadata(args, plan: Plan, device: str, precision_note: Optional[str], check: str) -> dict:
    return {
        "mode": plan.mode, "device": device, "device_name": device_name(device),
        **run_metadata("benchmarks.speed", args.argv, args.threads),
        "dtypes": list(DEVICE_DTYPES[device]),
        "load_average_1min_start": load_average(), "load_threshold": threshold(args.threads),
        "load_warning_start": pre_run_warning(args.threads),
        "load": ("per configuration: other_cores = CPU time other processes used while it was "
                 "measured (/proc/stat busy time of the usable cores, steal included, minus this "
                 "benchmark's own processes) per second; load_busy = other_cores > cores - threads + 0.5"),
        "timing": TIMING_METHOD[device], "min_run_time_s": plan.min_run_time,
        "min_repeats": plan.min_repeats, "rounds": plan.rounds,
        "max_run_time_s": plan.max_run_time,
        "memory": MEMORY_METHOD[device], "precision": precision_note, "check": check,
        "work_ratio": "SRN MACs / CW-RNN MACs over the sequence, exact from periods, module sizes, "
                      "input size, t0 = 0; CW-RNN charges each active module rows x (I + allowed columns); "
                      "bidirectional rows: the same (both sides do twice the work)",
        "fma_peak_share": ("per target: the kernel's multiply-adds (module-major count, forward+backward "
                           "3x the forward) per second over cores used x cpu_mhz x 2 FMA units x float32 "
                           "lanes of the capability (16 AVX512, 8 AVX2, 4 DEFAULT): an estimate"),
        "parameters": "CW-RNN: allowed weight_hh entries + weight_ih + biases; others: all parameters; "
                      "bidirectional rows: both directions",
        "bidirectional": "records with bidirectional = true: every model a bidirectional layer, "
                         "hidden_size per direction (output 2H), against nn.RNN / nn.LSTM(bidirectional=True)",
    }


@dataclass
class DeviceRun:
    """One device's results so far, saved after every configuration and when interrupted."""
    json_path: Path
    csv_path: Path
    meta: dict
    records: List[dict] = field(default_factory=list)
    targets: Optional[List[dict]] = None  # CPU: every target, the ones not measured yet as None

    def save(self) -> None:
        payload = {"meta": self.meta, "records": self.records, "targets": self.targets}
        self.json_path.write_text(json.dumps(payload, indent=1) + "\n")
        with self.csv_path.open("w", newline="") as handle:
            if self.records:
                writer = csv.DictWriter(handle, fieldnames=list(self.records[0]))
                writer.writeheader()
                writer.writerows(self.records)


def run_device(args, plan: Plan, device: str, runs: List[DeviceRun]) -> List[Path]:
    """Everything for one device; saves after every configuration and prints each target's
    verdict as soon as its configuration is measured."""
    print(f"\n[{device}] timing: {TIMING_METHOD[device]}; {plan.rounds} round(s), per model and pass "
          f"at least {plan.min_repeats} calls and {plan.min_run_time} s of warm calls in all, "
          f"at most {plan.max_run_time} s (or one call per round)")
    if args.memory:
        print(f"[{device}] peak memory (forward+backward only): {MEMORY_METHOD[device]}")
    precision_note = disable_tf32() if device == "cuda" else None
    if precision_note:
        print(f"[{device}] {precision_note} (in every measuring process)")
    check = check_clockwork_variants(torch.device(device))
    print(f"[{device}] {check}", flush=True)
    capability, mhz = cpu_capabilities()["kernel"], cpu_mhz()
    settings = Settings(plan.mode, torch.device(device), args.threads, args.models, plan.min_run_time,
                        plan.min_repeats, plan.rounds, plan.max_run_time, plan.reference_limit,
                        args.memory, capability)
    stem = result_stem(plan.mode, device)
    run = DeviceRun(args.out / f"{stem}.json", args.out / f"{stem}.csv",
                    metadata(args, plan, device, precision_note, check))
    runs.append(run)

    def judge() -> Optional[List[dict]]:
        return evaluate_targets(plan.targets, run.records, capability, args.threads, mhz) if device == "cpu" else None

    run.targets = judge()
    started, pngs = time.perf_counter(), []
    for dtype in DEVICE_DTYPES[device]:
        dtype_records, config_started = [], time.perf_counter()
        for config, config_records in run_plan(plan, dtype, settings, f"[{device} {dtype}]"):
            took = time.perf_counter() - config_started
            dtype_records += config_records
            run.records += config_records
            run.targets = judge()
            verdicts = [target_line(t) for t in run.targets or () if t["config"] == config.label]
            print(f"\n[{device}] {config_table(config, config_records)}\n  ({took:.1f} s)"
                  + "".join(f"\n  target {line}" for line in verdicts), flush=True)
            config_started = time.perf_counter()
            run.save()
        if plots_available():
            from .plots import plot_subtitle, write_plots  # matplotlib is only needed here
            pngs += write_plots(plan, dtype_records, dtype, args.out, f"{stem}_{dtype}",
                                plot_subtitle(device_name(device), dtype, args.threads, plan.mode, capability),
                                busy_note(config_loads(dtype_records), args.threads),
                                {t["key"]: t["minimum"] for t in run.targets or ()})
    print("\n" + LEGEND)
    busy = busy_note(config_loads(run.records), args.threads)
    run.meta["load_warning"] = busy and f"busy machine: {busy}"
    if run.targets:
        print("\n" + targets_text(run.targets, args.threads, plan.mode, busy))
    elif busy:
        print(f"\nnote: busy machine: {busy}")
    run.meta["wall_s"] = round(time.perf_counter() - started, 1)
    run.meta["load_average_1min_end"] = load_average()
    run.save()
    return [run.json_path, run.csv_path] + pngs


def capability_header(requested: Optional[str]) -> str:
    caps = cpu_capabilities()
    text = (f"CPU capability: {caps['kernel']} (torch's kernels {caps['torch']}, cwrnn_ext's "
            f"{caps['cwrnn_ext'] or 'not reported by this cwrnn_ext'}); ")
    if requested is None:
        return text + "the machine's best (--capability avx2 or default shows what a smaller instruction set gets)"
    env = ", ".join(f"{key}={value}" for key, value in CAPABILITY_ENV[requested].items())
    text += f"limited by --capability {requested}: {env}"
    if caps["torch"].lower() != requested:
        text += f"\nwarning: asked for {requested}, torch runs {caps['torch']}: this CPU lacks {requested}"
    return text


def interrupted_line(signal_name: str, elapsed_s: float, runs: List[DeviceRun]) -> str:
    """One line: what was measured, the verdicts so far, where the partial results are."""
    if not runs:
        return f"interrupted ({signal_name}) after {clock(elapsed_s)}, before anything was measured"
    parts = []
    for run in runs:
        part = f"{run.meta['device']}: {len(run.records)} records"
        if run.targets:
            part += f", targets {verdicts_in_one_line(run.targets)}"
        parts.append(part + f" (saved to {run.json_path})")
    return f"interrupted ({signal_name}) after {clock(elapsed_s)}; partial results: " + "; ".join(parts)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.capability is not None and not capability_applied(args.capability):
        # Every process of the run (this one, the fork server, the measuring processes) must start
        # with the limits: torch, MKL and oneDNN read them once, at start.
        env = {**os.environ, **CAPABILITY_ENV[args.capability]}
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.speed", *args.argv], env)
    plan = PLANS[args.mode]()
    if args.min_run_time is not None:
        plan = replace(plan, min_run_time=args.min_run_time)
    args.out.mkdir(parents=True, exist_ok=True)
    configure_threads(args.threads)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started, runs, written = time.perf_counter(), [], []
    print(f"cwrnn_ext speed benchmark, {plan.mode} mode: torch {torch.__version__}, threads={args.threads} "
          f"(of {available_cores()} cores), models: {', '.join(args.models)}; output to {args.out}")
    print(capability_header(requested_capability()))
    if not plots_available():
        print("note: matplotlib is not installed, so no plots (python3 -m pip install -r requirements.txt)")
    warning = pre_run_warning(args.threads)
    if warning:
        print(warning)
    try:
        for device in devices_to_run(args.device):
            written += run_device(args, plan, device, runs)
        if args.streaming and plan.mode in STREAMING_MODE:
            print("\n== Streaming: one step and short chunks (python -m benchmarks.streaming) ==")
            streaming.main([f"--{STREAMING_MODE[plan.mode]}", "--device", args.device, "--out", str(args.out)])
    except KeyboardInterrupt as interrupt:
        signal_name = interrupt.args[0] if interrupt.args else "SIGINT"
        for run in runs:
            run.meta["interrupted"] = f"{signal_name} after {time.perf_counter() - started:.1f} s"
            run.save()
        print("\n" + interrupted_line(signal_name, time.perf_counter() - started, runs), flush=True)
        return 128 + signal.Signals[signal_name].value
    print(f"\nwall time {time.perf_counter() - started:.1f} s; wrote:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
