"""`python -m benchmarks streaming [--smoke | --quick | --full] [options]`.

Streaming speed on the CPU: the Clockwork RNN run one step, or one short chunk, at a time.

  step       per-step latency of ClockworkRNNCell against nn.RNNCell and nn.LSTMCell of the same
             hidden size, under torch.no_grad(), 1 thread and all cores; one timed call runs a
             clock cycle of consecutive steps (t = 0, 1, 2, ...), so every clock value's cost is in
             the mean.
  chunk      cwrnn_ext.Stream.chunk over a sequence fed in chunks of 1, 8 and 64 steps, against
             nn.RNN called on the same chunks (hx carried), per step.
  crossover  one layer's forward over T steps with the CPU forward forced module-major and forced
             time-major, T = 1 .. 512: where time-major stops winning (csrc/cpu/policy.h's
             kTimeMajorMaxCost is set from this), and the path the kernel's own rule picks.

Every model of a table is timed in interleaved rounds (A B C, A B C, ...), medians per step, so
that a busy machine disturbs all of them alike. Prints tables and the targets (1 thread: B=1 H=256
no slower than nn.RNNCell, B=1 H=1024 >= 3x, B=32 H=512 >= 2x); `--out DIR` also writes
streaming_<mode>_cpu.json there (metadata and rows). Time: --smoke seconds, --quick (default) a
few minutes on 2 idle cores, --full longer.
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

from .machine import available_cores, plural, result_stem, run_metadata
from .work import work_ratio

INPUT_SIZE = 16
NUM_MODULES = 8
SECTIONS = ("step", "chunk", "crossover")
PLANS = {
    "smoke": dict(batches=[1, 3], hiddens=[16], thread_counts=[1], rounds=3, chunk_steps=32, chunks=[1, 8],
                  crossover_steps=[1, 4], crossover_hiddens=[16]),
    "quick": dict(batches=[1, 32], hiddens=[256, 512, 1024], thread_counts=[1, 0], rounds=9, chunk_steps=512,
                  chunks=[1, 8, 64], crossover_steps=[2 ** i for i in range(10)], crossover_hiddens=[256, 512, 1024]),
}
PLANS["full"] = dict(PLANS["quick"], rounds=25, hiddens=[128, 256, 512, 1024, 2048])
TARGETS = [(1, 256, 1.0), (1, 1024, 3.0), (32, 512, 2.0)]  # (B, H, minimum speed-up over nn.RNNCell), 1 thread


def interleaved(fns: Dict[str, Callable[[], None]], units: int, rounds: int,
                min_round_s: float = 0.05) -> Dict[str, Dict[str, float]]:
    """Median and minimum microseconds per unit (a call does `units` steps) of each callable, over
    `rounds` interleaved rounds; each round repeats a callable for at least min_round_s."""
    for fn in fns.values():  # warm-up: lazy initialisation, allocator caches
        fn()
        fn()
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            calls, start = 0, time.perf_counter()
            while not calls or time.perf_counter() - start < min_round_s:
                fn()
                calls += 1
            samples[name].append((time.perf_counter() - start) / (calls * units) * 1e6)
    return {name: {"median_us": statistics.median(s), "min_us": min(s)} for name, s in samples.items()}


def step_table(plan: dict, threads: int) -> List[dict]:
    rows = []
    for batch in plan["batches"]:
        for hidden in plan["hiddens"]:
            cell = cwrnn_ext.ClockworkRNNCell(INPUT_SIZE, hidden, num_modules=min(NUM_MODULES, hidden))
            rnn, lstm = nn.RNNCell(INPUT_SIZE, hidden), nn.LSTMCell(INPUT_SIZE, hidden)
            cycle = max(cell.periods)
            x, h0 = torch.randn(cycle, batch, INPUT_SIZE), torch.zeros(batch, hidden)

            def loop(step, state):  # a clock cycle of steps: state = step(t, state)
                def run():
                    current = state
                    for t in range(cycle):
                        current = step(t, current)
                return torch.no_grad()(run)
            times = interleaved({"cwrnn_cell": loop(lambda t, h: cell(x[t], h, t=t), h0),
                                 "rnn_cell": loop(lambda t, h: rnn(x[t], h), h0),
                                 "lstm_cell": loop(lambda t, s: lstm(x[t], s), (h0, h0))}, cycle, plan["rounds"])
            cw = times["cwrnn_cell"]["median_us"]
            rows.append(dict(section="step", device="cpu", threads=threads, batch=batch, hidden=hidden,
                             modules=len(cell.periods), times=times,
                             speedup_vs_rnn_cell=times["rnn_cell"]["median_us"] / cw,
                             speedup_vs_lstm_cell=times["lstm_cell"]["median_us"] / cw,
                             # over a whole clock cycle: the mean work of a step
                             work_ratio=work_ratio(cell.periods, cell.module_sizes, INPUT_SIZE, cycle)))
    return rows


def chunk_table(plan: dict, threads: int) -> List[dict]:
    rows, steps = [], plan["chunk_steps"]
    for batch in plan["batches"]:
        for hidden in plan["hiddens"][:2]:
            model = cwrnn_ext.ClockworkRNN(INPUT_SIZE, hidden, num_modules=min(NUM_MODULES, hidden))
            rnn, x = nn.RNN(INPUT_SIZE, hidden), torch.randn(steps, batch, INPUT_SIZE)
            for size in plan["chunks"]:
                def run_stream():  # a new Stream per call: the clock starts at 0 each time
                    stream = cwrnn_ext.Stream(model)
                    for start in range(0, steps, size):
                        stream.chunk(x[start:start + size])

                def run_rnn():
                    h = None
                    for start in range(0, steps, size):
                        _, h = rnn(x[start:start + size], h)
                times = interleaved({"cwrnn_stream": torch.no_grad()(run_stream), "rnn": torch.no_grad()(run_rnn)},
                                    steps, plan["rounds"])
                rows.append(dict(section="chunk", device="cpu", threads=threads, batch=batch, hidden=hidden,
                                 modules=len(model.periods), chunk=size, steps=steps, times=times,
                                 speedup_vs_rnn=times["rnn"]["median_us"] / times["cwrnn_stream"]["median_us"]))
    return rows


def crossover_table(plan: dict, threads: int) -> List[dict]:
    rows = []
    for batch in plan["batches"]:
        for hidden in plan["crossover_hiddens"]:
            model = cwrnn_ext.ClockworkRNN(INPUT_SIZE, hidden, num_modules=min(NUM_MODULES, hidden))
            params = [model.weight_ih_l0, model.weight_hh_l0, model.bias_ih_l0, model.bias_hh_l0,
                      model.periods, model.module_sizes]
            for steps in plan["crossover_steps"]:
                x = torch.randn(steps, batch, INPUT_SIZE)

                def forward(path):
                    def run():
                        with ops.forced_forward_path(path):
                            clockwork_rnn(x, None, *params)
                    return torch.no_grad()(run)
                times = interleaved({path: forward(path) for path in ("module_major", "time_major")}, steps,
                                    plan["rounds"])
                rows.append(dict(section="crossover", device="cpu", threads=threads, batch=batch, hidden=hidden,
                                 modules=len(model.periods), steps=steps, times=times,
                                 time_major_speedup=times["module_major"]["median_us"] / times["time_major"]["median_us"],
                                 rule_cost=steps * hidden * batch ** 0.6,
                                 rule_picks=ops.forward_path(steps, batch, hidden, len(set(model.periods)))))
    return rows


def table_text(rows: List[dict]) -> str:
    """A row per line: its sizes, each model's median microseconds per step, the ratios (ending in x)."""
    def cells(row: dict):
        for key, value in row.items():
            if key == "times":
                yield from ((f"{name} us", f"{t['median_us']:.2f}") for name, t in value.items())
            elif key not in ("section", "device"):
                yield key, (f"{value:.2f}x" if "speedup" in key or key == "work_ratio"
                            else f"{value:.3g}" if isinstance(value, float) else str(value))
    table = [list(cells(row)) for row in rows]
    lines = [[heading for heading, _ in table[0]]] + [[value for _, value in line] for line in table]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(" ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks streaming", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    for name, help_text in (("smoke", "tiny sizes, seconds: checks that everything runs"),
                            ("quick", "(default) the sizes of the targets"), ("full", "more hidden sizes and rounds")):
        mode.add_argument(f"--{name}", dest="mode", action="store_const", const=name, help=help_text)
    parser.set_defaults(mode="quick")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="comma-separated subset of step, chunk, crossover (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for streaming_<mode>_cpu.json (default: print only)")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {unknown}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    plan = PLANS[args.mode]
    thread_counts = list(dict.fromkeys(n or available_cores() for n in plan["thread_counts"]))  # 0: all cores
    meta = {"mode": args.mode, "device": "cpu", **run_metadata("benchmarks streaming", argv, thread_counts)}
    print(f"cwrnn_ext {cwrnn_ext.__version__}, torch {torch.__version__}, {meta['cpu_model']}, "
          f"{available_cores()} cores, CPU capability {meta['cpu_capability']['kernel']}; mode {args.mode}; "
          f"float32, I={INPUT_SIZE}, {NUM_MODULES} exponential modules; microseconds per step, medians\n"
          "Speeds on a shared or busy machine vary from run to run; compare ratios within one table.")
    rows, tables = [], [(section, threads) for threads in thread_counts for section in ("step", "chunk")]
    for section, threads in tables + [("crossover", thread_counts[0])]:
        if section in args.sections:
            torch.set_num_threads(threads)
            rows += {"step": step_table, "chunk": chunk_table, "crossover": crossover_table}[section](plan, threads)
            note = ("; rule_cost = T*H*B^0.6: the kernel's rule (csrc/cpu/policy.h) picks time-major when it is small"
                    if section == "crossover" else "")
            print(f"\n== {section}, {plural(threads, 'thread')}{note} ==\n"
                  + table_text([r for r in rows if r["section"] == section and r["threads"] == threads]))
    for batch, hidden, minimum in TARGETS:
        for r in rows:
            if r["section"] == "step" and r["threads"] == 1 and (r["batch"], r["hidden"]) == (batch, hidden):
                got = r["speedup_vs_rnn_cell"]
                print(f"{'PASS' if got >= minimum else 'MISS'}  target B={batch} H={hidden}: ClockworkRNNCell "
                      f"{got:.2f}x nn.RNNCell's speed per step (target >= {minimum:g}x; CPU, 1 thread, no_grad, median)")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{result_stem(args.mode, 'streaming')}.json"
        path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # `python -m benchmarks.streaming`: the same as `python -m benchmarks streaming`
    raise SystemExit(main())
