"""`python -m benchmarks speed [--smoke | --quick | --full | --long] [options]`.

Times the CW-RNN kernel against nn.RNN (and, with --full or --long, the pure-PyTorch reference, a
dense-masked CW-RNN, nn.LSTM of the same hidden size and of the same parameter count, also as
bidirectional layers, over sweeps) on the CPU, each model and pass in fresh processes (warm median
and cold first call). Prints each CPU target's verdict as soon as its configuration is measured,
the tables, and writes JSON, CSV and PNG plots to benchmarks/out/ (ignored by git) unless --out or
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import torch

from . import streaming
from .configs import PLANS
from .machine import (CAPABILITY_ENV, available_cores, busy_note, config_loads, cpu_capabilities, cpu_mhz,
                      cpu_model, load_average, pre_run_warning, requested_capability, result_stem,
                      run_metadata, threshold)
from .measure import MEMORY_METHOD, TIMING_METHOD
from .models import check_clockwork_variants
from .report import LEGEND, config_table, evaluate_targets, target_line, targets_text, verdicts_in_one_line
from .runner import clock, run_plan

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out"  # ignored by git
RESULTS_DIR = HERE / "results"  # committed: changed only with --update-results
STREAMING_MODE = {"smoke": "smoke", "full": "quick", "long": "full"}  # the section's plan in each mode
PROGRAM = "benchmarks speed"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {PROGRAM}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    for name, help_text in (
            ("smoke", "tiny sizes, under a minute: checks that everything runs"),
            ("quick", "(default) the five CPU targets, kernel vs nn.RNN: a few minutes on 2 idle cores"),
            ("full", "the targets with every model, a bidirectional row, small sweeps with plots, streaming: "
                     "tens of minutes on 2 cores"),
            ("long", "every model over hidden size, modules and length, batch 32 and 1 (hours)")):
        mode.add_argument(f"--{name}", dest="mode", action="store_const", const=name, help=help_text)
    parser.set_defaults(mode="quick")
    parser.add_argument("--threads", type=int, default=None,
                        help=f"intra-op threads, the same for every model (default: all cores, "
                             f"{available_cores()} here; --smoke: 1, so a busy machine cannot stall it)")
    parser.add_argument("--capability", choices=tuple(CAPABILITY_ENV), default=None,
                        help="run everything limited to this instruction set (ATEN_CPU_CAPABILITY, "
                             "MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA set for every process): what an "
                             "AVX2 or a baseline x86-64 machine would get (default: the machine's best)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=None, metavar="DIR",
                       help="output folder (default: benchmarks/out/, which git ignores)")
    where.add_argument("--update-results", action="store_true",
                       help="write to benchmarks/results/, the committed reference results, instead of --out "
                            "(not with --smoke)")
    parser.add_argument("--no-streaming", dest="streaming", action="store_false",
                        help="skip the streaming section of --smoke, --full and --long")
    args = parser.parse_args(argv)
    if args.threads is None:
        args.threads = 1 if args.mode == "smoke" else available_cores()
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.update_results and args.mode == "smoke":
        parser.error("--update-results with --smoke: smoke numbers are not results")
    args.out = RESULTS_DIR if args.update_results else (DEFAULT_OUT if args.out is None else args.out)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    return args


def metadata(args, check: str) -> dict:
    """What the result file records about its run (the fields are described in benchmarks/README.md)."""
    timing = PLANS[args.mode].timing
    return {"mode": args.mode, "device": "cpu", "device_name": cpu_model(), "dtypes": ["float32"],
            **run_metadata(PROGRAM, args.argv, args.threads), "load_average_1min_start": load_average(),
            "load_threshold": threshold(args.threads), "load_warning_start": pre_run_warning(args.threads),
            "timing": TIMING_METHOD, "min_run_time_s": timing.min_run_time, "min_repeats": timing.min_repeats,
            "rounds": timing.rounds, "max_run_time_s": timing.max_run_time, "memory": MEMORY_METHOD, "check": check}


@dataclass
class Run:
    """The results so far, saved after every configuration and when interrupted."""
    json_path: Path
    meta: dict
    records: List[dict] = field(default_factory=list)
    targets: Optional[List[dict]] = None  # every target, the ones not measured yet with None speed-ups

    def save(self) -> None:
        self.json_path.write_text(json.dumps({"meta": self.meta, "records": self.records,
                                              "targets": self.targets}, indent=1) + "\n")
        with self.json_path.with_suffix(".csv").open("w", newline="") as handle:
            if self.records:
                writer = csv.DictWriter(handle, fieldnames=list(self.records[0]))
                writer.writeheader()
                writer.writerows(self.records)


def measure_plan(args, run: Run) -> List[Path]:
    """Every configuration of the plan; saves after each and prints each target's verdict as soon
    as its configuration is measured."""
    plan = PLANS[args.mode]
    print(f"\ntiming: {TIMING_METHOD}; {plan.timing}\npeak memory (forward+backward only): {MEMORY_METHOD}\n"
          f"{run.meta['check']}", flush=True)
    capability, mhz = cpu_capabilities()["kernel"], cpu_mhz()
    started = config_started = time.perf_counter()
    run.targets = evaluate_targets(plan.targets, run.records, capability, args.threads, mhz)
    for config, records in run_plan(plan, args.threads, capability):
        run.records += records
        run.targets = evaluate_targets(plan.targets, run.records, capability, args.threads, mhz)
        verdicts = [target_line(t) for t in run.targets if t["config"] == config.label]
        print(f"\n{config_table(config, records)}\n  ({time.perf_counter() - config_started:.1f} s)"
              + "".join(f"\n  target {line}" for line in verdicts), flush=True)
        config_started = time.perf_counter()
        run.save()
    busy = busy_note(config_loads(run.records), args.threads)
    pngs = []
    if importlib.util.find_spec("matplotlib") is not None:
        from .plots import write_plots  # matplotlib is only needed here
        pngs = write_plots(plan, {"meta": run.meta, "records": run.records, "targets": run.targets}, args.out,
                           f"{run.json_path.stem}_float32")
    print("\n" + LEGEND + "\n\n" + targets_text(run.targets, args.threads, plan.mode, busy))
    run.meta.update(load_warning=busy and f"busy machine: {busy}", load_average_1min_end=load_average(),
                    wall_s=round(time.perf_counter() - started, 1))
    run.save()
    return [run.json_path, run.json_path.with_suffix(".csv")] + pngs


def capability_header(requested: Optional[str]) -> str:
    caps = cpu_capabilities()
    text = (f"CPU capability: {caps['kernel']} (torch's kernels {caps['torch']}, cwrnn_ext's "
            f"{caps['cwrnn_ext'] or 'not reported by this cwrnn_ext'}); ")
    if requested is None:
        return text + "the machine's best (--capability avx2 or default shows what a smaller instruction set gets)"
    text += f"limited by --capability {requested}: " + ", ".join(f"{k}={v}" for k, v in CAPABILITY_ENV[requested].items())
    if caps["torch"].lower() != requested:
        text += f"\nwarning: asked for {requested}, torch runs {caps['torch']}: this CPU lacks {requested}"
    return text


def interrupted_line(signal_name: str, elapsed_s: float, run: Optional[Run]) -> str:
    """One line: what was measured, the verdicts so far, where the partial results are."""
    if run is None:
        return f"interrupted ({signal_name}) after {clock(elapsed_s)}, before anything was measured"
    return (f"interrupted ({signal_name}) after {clock(elapsed_s)}; partial results: cpu: {len(run.records)} "
            f"records, targets {verdicts_in_one_line(run.targets or [])} (saved to {run.json_path})")


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.capability is not None and requested_capability() != args.capability:
        # Every process of the run (this one, the fork server, the measuring processes) must start
        # with the limits: torch, MKL and oneDNN read them once, at start.
        env = {**os.environ, **CAPABILITY_ENV[args.capability]}
        os.execve(sys.executable, [sys.executable, "-m", *PROGRAM.split(), *args.argv], env)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started, run, written = time.perf_counter(), None, []
    print(f"cwrnn_ext speed benchmark, {args.mode} mode: torch {torch.__version__}, threads={args.threads} "
          f"(of {available_cores()} cores); output to {args.out}\n{capability_header(requested_capability())}")
    if importlib.util.find_spec("matplotlib") is None:
        print("note: matplotlib is not installed, so no plots (python3 -m pip install -r requirements.txt)")
    warning = pre_run_warning(args.threads)
    if warning:
        print(warning)
    try:
        run = Run(args.out / f"{result_stem(args.mode)}.json", metadata(args, check_clockwork_variants()))
        written += measure_plan(args, run)
        if args.streaming and args.mode in STREAMING_MODE:
            print("\n== Streaming: one step and short chunks (python -m benchmarks streaming) ==")
            streaming.main([f"--{STREAMING_MODE[args.mode]}", "--out", str(args.out)])
    except KeyboardInterrupt as interrupt:
        signal_name = interrupt.args[0] if interrupt.args else "SIGINT"
        if run is not None:
            run.meta["interrupted"] = f"{signal_name} after {time.perf_counter() - started:.1f} s"
            run.save()
        print("\n" + interrupted_line(signal_name, time.perf_counter() - started, run), flush=True)
        return 128 + signal.Signals[signal_name].value
    print(f"\nwall time {time.perf_counter() - started:.1f} s; wrote:" + "".join(f"\n  {p}" for p in written))
    return 0


if __name__ == "__main__":  # `python -m benchmarks.speed`: the same as `python -m benchmarks speed`
    sys.exit(main())
