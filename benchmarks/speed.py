"""CLI: `python -m benchmarks.speed [--smoke | --quick | --full] [options]`.

Times the CW-RNN kernel against the pure-PyTorch reference, a naive dense-masked CW-RNN,
nn.RNN and nn.LSTM (same hidden size) and nn.LSTM (same parameter count), each model and pass in
fresh processes (warm median and cold first call), also as bidirectional layers at target (a)'s
size; prints tables and the CPU targets, and writes JSON, CSV and PNG plots to benchmarks/out/
(ignored by git) unless --out or --update-results says otherwise. Progress goes to stderr. See
benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import torch

import cwrnn_ext

from . import streaming
from .checks import check_clockwork_variants
from .configs import DEVICE_DTYPES, PLANS, Plan
from .load import available_cores, busy_note, config_loads, load_average, pre_run_warning, threshold
from .memory import MEMORY_METHOD
from .models import MODEL_NAMES
from .report import LEGEND, config_table, evaluate_targets, targets_text
from .results import write_csv, write_json
from .runner import Settings, run_plan
from .timing import TIMING_METHOD, configure_threads, disable_tf32

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out"  # ignored by git
RESULTS_DIR = HERE / "results"  # committed: changed only with --update-results


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", dest="mode", action="store_const", const="smoke",
                      help="tiny sizes, under a minute: checks that everything runs")
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                      help="(default) the CPU targets plus small sweeps, minutes on 2 idle cores (estimated)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="every model over hidden size, modules and length, batch 32 and 1 (long)")
    parser.set_defaults(mode="quick")
    parser.add_argument("--threads", type=int, default=None,
                        help=f"intra-op threads, the same for every model (default: all cores, "
                             f"{available_cores()} here; --smoke: 1, so a busy machine cannot stall it)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto (default): CPU, and CUDA too when available")
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
                        help="skip the streaming section (one step and short chunks against "
                             "nn.RNNCell / nn.LSTMCell; python -m benchmarks.streaming runs it alone)")
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


def git_commit() -> Optional[str]:
    """HEAD of the checkout the benchmark ran from, '+dirty' if it had local changes."""
    def git(*command):
        return subprocess.run(["git", *command], cwd=Path(__file__).resolve().parent.parent,
                              capture_output=True, text=True, timeout=10)
    try:
        head, status = git("rev-parse", "HEAD"), git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:  # Linux names the CPU model here; platform.processor() is often empty
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def metadata(args, plan: Plan, device: str, precision_note: Optional[str], check: str) -> dict:
    return {
        "mode": plan.mode, "device": device, "device_name": device_name(device),
        "dtypes": list(DEVICE_DTYPES[device]), "threads": args.threads, "cores": available_cores(),
        "torch": torch.__version__, "cwrnn_ext": cwrnn_ext.__version__,
        "cuda_kernels_available": cwrnn_ext.cuda_kernels_available(),
        "python": platform.python_version(), "platform": platform.platform(), "git_commit": git_commit(),
        "command": " ".join(["python -m benchmarks.speed"] + sys.argv[1:]),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
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
        "parameters": "CW-RNN: allowed weight_hh entries + weight_ih + biases; others: all parameters; "
                      "bidirectional rows: both directions",
        "bidirectional": "records with bidirectional = true: every model a bidirectional layer, "
                         "hidden_size per direction (output 2H), against nn.RNN / nn.LSTM(bidirectional=True)",
    }


def run_device(args, plan: Plan, device: str) -> List[Path]:
    """Everything for one device; saves after every config so a long run leaves partial results."""
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
    settings = Settings(plan.mode, torch.device(device), args.threads, args.models, plan.min_run_time,
                        plan.min_repeats, plan.rounds, plan.max_run_time, plan.reference_limit,
                        args.memory)
    meta = metadata(args, plan, device, precision_note, check)
    json_path = args.out / f"{plan.mode}_{device}.json"
    csv_path = args.out / f"{plan.mode}_{device}.csv"
    started, records, pngs = time.perf_counter(), [], []
    for dtype in DEVICE_DTYPES[device]:
        dtype_records, config_started = [], time.perf_counter()
        for config, config_records, progress in run_plan(plan, dtype, settings, f"[{device} {dtype}]"):
            took = time.perf_counter() - config_started
            progress.write(f"\n[{device}] {config_table(config, config_records)}\n  ({took:.1f} s)")
            config_started = time.perf_counter()
            dtype_records += config_records
            records += config_records
            write_json(json_path, meta, records, None)
            write_csv(csv_path, records)
        if plots_available():
            from .plots import plot_subtitle, write_plots  # matplotlib is only needed here
            pngs += write_plots(plan, dtype_records, dtype, args.out, f"{plan.mode}_{device}_{dtype}",
                                plot_subtitle(device_name(device), dtype, args.threads, plan.mode),
                                busy_note(config_loads(dtype_records), args.threads))
    print("\n" + LEGEND)
    busy = busy_note(config_loads(records), args.threads)
    meta["load_warning"] = busy and f"busy machine: {busy}"
    targets = evaluate_targets(plan.targets, records) if device == "cpu" else None
    if targets:
        print("\n" + targets_text(targets, args.threads, plan.mode, busy))
    elif busy:
        print(f"\nnote: busy machine: {busy}")
    # Further sections for this device (each printing its own table and writing its own files)
    # go here, after the main tables and verdicts.
    meta["wall_s"] = round(time.perf_counter() - started, 1)
    meta["load_average_1min_end"] = load_average()
    write_json(json_path, meta, records, targets)
    return [json_path, csv_path] + pngs


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    plan = PLANS[args.mode]()
    if args.min_run_time is not None:
        plan = replace(plan, min_run_time=args.min_run_time)
    args.out.mkdir(parents=True, exist_ok=True)
    configure_threads(args.threads)
    started = time.perf_counter()
    print(f"cwrnn_ext speed benchmark, {plan.mode} mode: torch {torch.__version__}, threads={args.threads} "
          f"(of {available_cores()} cores), models: {', '.join(args.models)}; output to {args.out}")
    if not plots_available():
        print("note: matplotlib is not installed, so no plots (python3 -m pip install -r requirements.txt)")
    warning = pre_run_warning(args.threads)
    if warning:
        print(warning)
    written = []
    for device in devices_to_run(args.device):
        written += run_device(args, plan, device)
    if args.streaming:
        print("\n== Streaming: one step and short chunks (python -m benchmarks.streaming) ==")
        streaming.main([f"--{plan.mode}", "--device", args.device, "--out", str(args.out)])
    print(f"\nwall time {time.perf_counter() - started:.1f} s; wrote:")
    for path in written:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
