"""CLI: `python -m benchmarks.streaming [--smoke | --quick | --full] [options]`.

Streaming speed: the Clockwork RNN run one step, or one short chunk, at a time.

  step       per-step latency of ClockworkRNNCell against nn.RNNCell and nn.LSTMCell of the same
             hidden size, under torch.no_grad(): B in {1, 32}, H in {256, 512, 1024}, 1 thread
             and the default thread count; one timed call runs `cycle` consecutive steps (clock
             0, 1, 2, ...), so every clock value's cost is in the mean.
  chunk      cwrnn_ext.Stream.chunk over a sequence fed in chunks of 1, 8 and 64 steps, against
             nn.RNN called on the same chunks (hx carried), per step.
  crossover  one layer's forward over T steps by the module-major schedule and by the
             time-major step kernel (each forced), T = 1 .. 512: where the time-major path stops
             winning (csrc/cpu/policy.h's kTimeMajorMaxCost is set from this), and which one the
             forward's rule picks.

Every model of a table is timed in interleaved rounds (A B C, A B C, ...), medians per step, so
that a busy machine disturbs all of them alike; ratios are from the same run. Prints tables and
the targets (CPU, 1 thread: B=1 H=256 no slower than nn.RNNCell, B=1 H=1024 >= 3x, B=32 H=512
>= 2x); `--out DIR` also writes streaming_<mode>_<device>.json there (metadata and rows).
Time: --smoke a few seconds, --quick (default) a few minutes on 2 idle cores, --full longer.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

import cwrnn_ext
from cwrnn_ext import ops
from cwrnn_ext.functional import clockwork_rnn

from .load import available_cores
from .machine import result_stem, run_metadata

INPUT_SIZE = 16
NUM_MODULES = 8

PLANS = {
    "smoke": dict(batches=[1, 3], hiddens=[16], thread_counts=[1], cycle=16, rounds=3,
                  chunk_steps=32, chunks=[1, 8], crossover_steps=[1, 4], crossover_hiddens=[16]),
    "quick": dict(batches=[1, 32], hiddens=[256, 512, 1024], thread_counts=[1, 0], cycle=128,
                  rounds=9, chunk_steps=512, chunks=[1, 8, 64],
                  crossover_steps=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
                  crossover_hiddens=[256, 512, 1024]),
}
PLANS["full"] = dict(PLANS["quick"], rounds=25, hiddens=[128, 256, 512, 1024, 2048])

TARGETS = [  # (B, H, minimum speed-up of ClockworkRNNCell over nn.RNNCell), CPU, 1 thread
    (1, 256, 1.0),
    (1, 1024, 3.0),
    (32, 512, 2.0),
]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: Dict[str, Callable[[], None]], per_call: Dict[str, int], rounds: int,
                device: torch.device, min_round_s: float = 0.05) -> Dict[str, Dict[str, float]]:
    """Median and minimum microseconds per unit (a call does per_call[name] units) of each
    callable, over `rounds` interleaved rounds; each round repeats a callable for at least
    min_round_s and takes the mean."""
    for fn in fns.values():  # warm-up: lazy initialisation, allocator caches
        fn()
        fn()
    synchronize(device)
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            calls, start = 0, time.perf_counter()
            while True:
                fn()
                calls += 1
                synchronize(device)
                elapsed = time.perf_counter() - start
                if elapsed >= min_round_s:
                    break
            samples[name].append(elapsed / (calls * per_call[name]) * 1e6)
    return {name: {"median_us": statistics.median(s), "min_us": min(s)} for name, s in samples.items()}


def work_ratio(hidden: int, input_size: int, periods: List[int], sizes: List[int]) -> float:
    """Multiply-adds of an nn.RNNCell step over the mean of a CW-RNN step's (over a clock cycle)."""
    srn = hidden * (input_size + hidden)
    begins = [sum(sizes[:i]) for i in range(len(sizes))]
    cw = sum(k * (input_size + hidden - b) / p for p, k, b in zip(periods, sizes, begins))
    return srn / cw


# ---------------------------------------------------------------------------------------------
# Per-step latency
# ---------------------------------------------------------------------------------------------

def step_table(plan: dict, device: torch.device, threads: int) -> List[dict]:
    rows = []
    cycle = plan["cycle"]
    for batch in plan["batches"]:
        for hidden in plan["hiddens"]:
            g = min(NUM_MODULES, hidden)
            cell = cwrnn_ext.ClockworkRNNCell(INPUT_SIZE, hidden, num_modules=g, device=device)
            rnn = nn.RNNCell(INPUT_SIZE, hidden, device=device)
            lstm = nn.LSTMCell(INPUT_SIZE, hidden, device=device)
            x = torch.randn(cycle, batch, INPUT_SIZE, device=device)
            h0 = torch.zeros(batch, hidden, device=device)

            def run_cell():
                with torch.no_grad():
                    h = h0
                    for t in range(cycle):
                        h = cell(x[t], h, t=t)

            def run_rnn():
                with torch.no_grad():
                    h = h0
                    for t in range(cycle):
                        h = rnn(x[t], h)

            def run_lstm():
                with torch.no_grad():
                    state = (h0, h0)
                    for t in range(cycle):
                        state = lstm(x[t], state)

            times = interleaved({"cwrnn_cell": run_cell, "rnn_cell": run_rnn, "lstm_cell": run_lstm},
                                {"cwrnn_cell": cycle, "rnn_cell": cycle, "lstm_cell": cycle},
                                plan["rounds"], device)
            rows.append(dict(section="step", device=device.type, threads=threads, batch=batch,
                             hidden=hidden, modules=g, times=times,
                             speedup_vs_rnn_cell=times["rnn_cell"]["median_us"] / times["cwrnn_cell"]["median_us"],
                             speedup_vs_lstm_cell=times["lstm_cell"]["median_us"] / times["cwrnn_cell"]["median_us"],
                             work_ratio=work_ratio(hidden, INPUT_SIZE, cell.periods, cell.module_sizes)))
    return rows


def print_step_table(rows: List[dict]) -> None:
    print(f"{'threads':>7} {'B':>3} {'H':>5} | {'CW cell':>9} {'RNNCell':>9} {'LSTMCell':>9} | "
          f"{'vs RNN':>7} {'vs LSTM':>7} {'work':>6}   (us per step, median)")
    for r in rows:
        t = r["times"]
        print(f"{r['threads']:>7} {r['batch']:>3} {r['hidden']:>5} | {t['cwrnn_cell']['median_us']:>9.1f} "
              f"{t['rnn_cell']['median_us']:>9.1f} {t['lstm_cell']['median_us']:>9.1f} | "
              f"{r['speedup_vs_rnn_cell']:>6.2f}x {r['speedup_vs_lstm_cell']:>6.2f}x {r['work_ratio']:>5.1f}x")


# ---------------------------------------------------------------------------------------------
# Chunked streaming
# ---------------------------------------------------------------------------------------------

def chunk_table(plan: dict, device: torch.device, threads: int) -> List[dict]:
    rows = []
    steps = plan["chunk_steps"]
    for batch in plan["batches"]:
        for hidden in plan["hiddens"][:2]:
            g = min(NUM_MODULES, hidden)
            model = cwrnn_ext.ClockworkRNN(INPUT_SIZE, hidden, num_modules=g, device=device)
            rnn = nn.RNN(INPUT_SIZE, hidden, device=device)
            x = torch.randn(steps, batch, INPUT_SIZE, device=device)
            fns, units = {}, {}
            for size in plan["chunks"]:
                def run_stream(size=size):
                    with torch.no_grad():
                        stream = cwrnn_ext.Stream(model)
                        for start in range(0, steps, size):
                            stream.chunk(x[start:start + size])

                def run_rnn(size=size):
                    with torch.no_grad():
                        h = None
                        for start in range(0, steps, size):
                            _, h = rnn(x[start:start + size], h)

                fns[f"stream_chunk{size}"], fns[f"rnn_chunk{size}"] = run_stream, run_rnn
                units[f"stream_chunk{size}"] = units[f"rnn_chunk{size}"] = steps
            times = interleaved(fns, units, plan["rounds"], device)
            for size in plan["chunks"]:
                cw, srn = times[f"stream_chunk{size}"], times[f"rnn_chunk{size}"]
                rows.append(dict(section="chunk", device=device.type, threads=threads, batch=batch,
                                 hidden=hidden, modules=g, chunk=size, steps=steps,
                                 times={"cwrnn_stream": cw, "rnn": srn},
                                 speedup_vs_rnn=srn["median_us"] / cw["median_us"]))
    return rows


def print_chunk_table(rows: List[dict]) -> None:
    print(f"{'threads':>7} {'B':>3} {'H':>5} {'chunk':>5} | {'CW Stream':>9} {'nn.RNN':>9} | {'vs RNN':>7}"
          f"   (us per step, median)")
    for r in rows:
        t = r["times"]
        print(f"{r['threads']:>7} {r['batch']:>3} {r['hidden']:>5} {r['chunk']:>5} | "
              f"{t['cwrnn_stream']['median_us']:>9.2f} {t['rnn']['median_us']:>9.2f} | {r['speedup_vs_rnn']:>6.2f}x")


# ---------------------------------------------------------------------------------------------
# Schedule crossover
# ---------------------------------------------------------------------------------------------

def crossover_table(plan: dict, device: torch.device, threads: int) -> List[dict]:
    rows = []
    for batch in plan["batches"]:
        for hidden in plan["crossover_hiddens"]:
            g = min(NUM_MODULES, hidden)
            model = cwrnn_ext.ClockworkRNN(INPUT_SIZE, hidden, num_modules=g, device=device)
            params = [model.weight_ih_l0, model.weight_hh_l0, model.bias_ih_l0, model.bias_hh_l0,
                      model.periods, model.module_sizes]
            for steps in plan["crossover_steps"]:
                x = torch.randn(steps, batch, INPUT_SIZE, device=device)

                def module_major():
                    with torch.no_grad(), ops.forced_forward_path("module_major"):
                        clockwork_rnn(x, None, *params)

                def time_major():
                    with torch.no_grad(), ops.forced_forward_path("time_major"):
                        clockwork_rnn(x, None, *params)

                times = interleaved({"module_major": module_major, "time_major": time_major},
                                    {"module_major": steps, "time_major": steps}, plan["rounds"], device)
                rows.append(dict(section="crossover", device=device.type, threads=threads, batch=batch,
                                 hidden=hidden, modules=g, steps=steps, times=times,
                                 time_major_speedup=times["module_major"]["median_us"] / times["time_major"]["median_us"],
                                 rule_cost=steps * hidden * batch ** 0.6,
                                 rule_picks=ops.forward_path(steps, batch, hidden, len(set(model.periods)))
                                 if device.type == "cpu" else "module_major"))
    return rows


def print_crossover_table(rows: List[dict]) -> None:
    print(f"{'B':>3} {'H':>5} {'T':>5} | {'module-major':>12} {'time-major':>10} | {'time-major speed-up':>19}"
          f" {'T*H*B^0.6':>10} {'rule picks':>12}   (us per step, median; the rule: "
          "time-major when T*H*B^0.6 is small; csrc/cpu/policy.h)")
    for r in rows:
        t = r["times"]
        print(f"{r['batch']:>3} {r['hidden']:>5} {r['steps']:>5} | {t['module_major']['median_us']:>12.2f} "
              f"{t['time_major']['median_us']:>10.2f} | {r['time_major_speedup']:>18.2f}x "
              f"{r['rule_cost']:>10.3g} {r['rule_picks']:>12}")


# ---------------------------------------------------------------------------------------------

def targets_text(rows: List[dict]) -> List[str]:
    lines = []
    for batch, hidden, minimum in TARGETS:
        match = [r for r in rows if r["section"] == "step" and r["device"] == "cpu" and r["threads"] == 1
                 and r["batch"] == batch and r["hidden"] == hidden]
        if not match:
            continue
        got = match[0]["speedup_vs_rnn_cell"]
        verdict = "PASS" if got >= minimum else "MISS"
        lines.append(f"{verdict}  B={batch} H={hidden}: ClockworkRNNCell {got:.2f}x nn.RNNCell's speed "
                     f"per step (target >= {minimum:g}x; CPU, 1 thread, no_grad, median)")
    return lines


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streaming", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    for name, help_text in (("smoke", "tiny sizes, seconds: checks that everything runs"),
                            ("quick", "(default) the sizes of the targets"),
                            ("full", "more hidden sizes and rounds")):
        mode.add_argument(f"--{name}", dest="mode", action="store_const", const=name, help=help_text)
    parser.set_defaults(mode="quick")
    parser.add_argument("--sections", default="step,chunk,crossover",
                        help="comma-separated subset of step, chunk, crossover (default: all)")
    parser.add_argument("--threads", default=None,
                        help=f"comma-separated intra-op thread counts, 0 meaning all cores ({available_cores()} "
                             f"here) (default: 1,0; --smoke: 1); the crossover runs on the first")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto (default): CPU, and CUDA too when available")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for streaming_<mode>_<device>.json (default: print only)")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    plan = PLANS[args.mode]
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - {"step", "chunk", "crossover"}
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; choose from step, chunk, crossover")
    thread_counts = ([int(n) for n in args.threads.split(",")] if args.threads else plan["thread_counts"])
    thread_counts = list(dict.fromkeys(n if n > 0 else available_cores() for n in thread_counts))
    devices = [torch.device("cpu")]
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices = [torch.device("cuda")] if args.device == "cuda" else devices + [torch.device("cuda")]
    meta = {"mode": args.mode, **run_metadata("benchmarks.streaming", argv, thread_counts)}
    print(f"cwrnn_ext {cwrnn_ext.__version__}, torch {torch.__version__}, {meta['cpu_model']}, "
          f"{available_cores()} cores, CPU capability {meta['cpu_capability']['kernel']}; mode {args.mode}; "
          f"float32, I={INPUT_SIZE}, {NUM_MODULES} exponential modules")
    print("Speeds on a shared or busy machine vary from run to run; compare ratios within one table.")
    all_rows = []
    for device in devices:
        for threads in (thread_counts if device.type == "cpu" else [thread_counts[0]]):
            torch.set_num_threads(threads)
            print(f"\n== {device.type}, {threads} thread(s) ==")
            if "step" in sections:
                rows = step_table(plan, device, threads)
                print_step_table(rows)
                all_rows += rows
            if "chunk" in sections:
                rows = chunk_table(plan, device, threads)
                print()
                print_chunk_table(rows)
                all_rows += rows
        if "crossover" in sections:
            torch.set_num_threads(thread_counts[0])
            print(f"\n== {device.type}: module-major vs time-major forward, {thread_counts[0]} thread(s) ==")
            rows = crossover_table(plan, device, thread_counts[0])
            print_crossover_table(rows)
            all_rows += rows
    lines = targets_text(all_rows)
    if lines:
        print("\nTargets:")
        print("\n".join(lines))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for device in devices:
            path = args.out / f"{result_stem(args.mode, device.type, 'streaming')}.json"
            rows = [r for r in all_rows if r["device"] == device.type]
            path.write_text(json.dumps({"meta": {**meta, "device": device.type}, "rows": rows}, indent=1))
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
