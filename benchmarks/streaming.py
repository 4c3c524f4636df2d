"""`python -m benchmarks streaming [--smoke | --quick | --full] [options]`.

Streaming speed on the CPU: the Clockwork RNN run one step, or one short chunk, at a time.

  step       per-step latency of ClockworkRNNCell against nn.RNNCell and nn.LSTMCell of the same
             hidden size, under torch.no_grad(): B in {1, 32}, H in {256, 512, 1024}, 1 thread
             and all cores; one timed call runs `cycle` consecutive steps (clock 0, 1, 2, ...), so
             every clock value's cost is in the mean.
  chunk      cwrnn_ext.Stream.chunk over a sequence fed in chunks of 1, 8 and 64 steps, against
             nn.RNN called on the same chunks (hx carried), per step.
  crossover  one layer's forward over T steps by the module-major schedule and by the
             time-major step kernel (each forced), T = 1 .. 512: where the time-major path stops
             winning (csrc/cpu/policy.h's kTimeMajorMaxCost is set from this), and which one the
             forward's rule picks.

Every model of a table is timed in interleaved rounds (A B C, A B C, ...), medians per step, so
that a busy machine disturbs all of them alike; ratios are from the same run. Prints tables and
the targets (1 thread: B=1 H=256 no slower than nn.RNNCell, B=1 H=1024 >= 3x, B=32 H=512 >= 2x);
`--out DIR` also writes streaming_<mode>_cpu.json there (metadata and rows).
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

from .machine import available_cores, result_stem, run_metadata
from .work import work_ratio

INPUT_SIZE = 16
NUM_MODULES = 8
SECTIONS = ("step", "chunk", "crossover")

PLANS = {
    "smoke": dict(batches=[1, 3], hiddens=[16], thread_counts=[1], cycle=16, rounds=3,
                  chunk_steps=32, chunks=[1, 8], crossover_steps=[1, 4], crossover_hiddens=[16]),
    "quick": dict(batches=[1, 32], hiddens=[256, 512, 1024], thread_counts=[1, 0], cycle=128,
                  rounds=9, chunk_steps=512, chunks=[1, 8, 64],
                  crossover_steps=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
                  crossover_hiddens=[256, 512, 1024]),
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


def no_grad_loop(step: Callable, state, steps: int) -> Callable[[], None]:
    """A call that runs `state = step(t, state)` for t = 0 .. steps - 1 under torch.no_grad()."""
    def run():
        with torch.no_grad():
            current = state
            for t in range(steps):
                current = step(t, current)
    return run


def step_table(plan: dict, threads: int) -> List[dict]:
    rows, cycle = [], plan["cycle"]
    for batch in plan["batches"]:
        for hidden in plan["hiddens"]:
            g = min(NUM_MODULES, hidden)
            cell = cwrnn_ext.ClockworkRNNCell(INPUT_SIZE, hidden, num_modules=g)
            rnn, lstm = nn.RNNCell(INPUT_SIZE, hidden), nn.LSTMCell(INPUT_SIZE, hidden)
            x, h0 = torch.randn(cycle, batch, INPUT_SIZE), torch.zeros(batch, hidden)
            times = interleaved({"cwrnn_cell": no_grad_loop(lambda t, h: cell(x[t], h, t=t), h0, cycle),
                                 "rnn_cell": no_grad_loop(lambda t, h: rnn(x[t], h), h0, cycle),
                                 "lstm_cell": no_grad_loop(lambda t, s: lstm(x[t], s), (h0, h0), cycle)},
                                cycle, plan["rounds"])
            cw = times["cwrnn_cell"]["median_us"]
            rows.append(dict(section="step", device="cpu", threads=threads, batch=batch, hidden=hidden, modules=g,
                             times=times, speedup_vs_rnn_cell=times["rnn_cell"]["median_us"] / cw,
                             speedup_vs_lstm_cell=times["lstm_cell"]["median_us"] / cw,
                             # over a whole clock cycle: the mean work of a step
                             work_ratio=work_ratio(cell.periods, cell.module_sizes, INPUT_SIZE, max(cell.periods))))
    return rows


def chunk_table(plan: dict, threads: int) -> List[dict]:
    rows, steps = [], plan["chunk_steps"]
    for batch in plan["batches"]:
        for hidden in plan["hiddens"][:2]:
            g = min(NUM_MODULES, hidden)
            model, rnn = cwrnn_ext.ClockworkRNN(INPUT_SIZE, hidden, num_modules=g), nn.RNN(INPUT_SIZE, hidden)
            x = torch.randn(steps, batch, INPUT_SIZE)
            fns = {}
            for size in plan["chunks"]:
                def run_stream(size=size):  # a new Stream per call: the clock starts at 0 each time
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
            times = interleaved(fns, steps, plan["rounds"])
            for size in plan["chunks"]:
                cw, srn = times[f"stream_chunk{size}"], times[f"rnn_chunk{size}"]
                rows.append(dict(section="chunk", device="cpu", threads=threads, batch=batch, hidden=hidden,
                                 modules=g, chunk=size, steps=steps, times={"cwrnn_stream": cw, "rnn": srn},
                                 speedup_vs_rnn=srn["median_us"] / cw["median_us"]))
    return rows


def crossover_table(plan: dict, threads: int) -> List[dict]:
    rows = []
    for batch in plan["batches"]:
        for hidden in plan["crossover_hiddens"]:
            g = min(NUM_MODULES, hidden)
            model = cwrnn_ext.ClockworkRNN(INPUT_SIZE, hidden, num_modules=g)
            params = [model.weight_ih_l0, model.weight_hh_l0, model.bias_ih_l0, model.bias_hh_l0,
                      model.periods, model.module_sizes]
            for steps in plan["crossover_steps"]:
                x = torch.randn(steps, batch, INPUT_SIZE)

                def forward(path):
                    def run():
                        with torch.no_grad(), ops.forced_forward_path(path):
                            clockwork_rnn(x, None, *params)
                    return run

                times = interleaved({"module_major": forward("module_major"),
                                     "time_major": forward("time_major")}, steps, plan["rounds"])
                rows.append(dict(section="crossover", device="cpu", threads=threads, batch=batch, hidden=hidden,
                                 modules=g, steps=steps, times=times,
                                 time_major_speedup=times["module_major"]["median_us"] / times["time_major"]["median_us"],
                                 rule_cost=steps * hidden * batch ** 0.6,
                                 rule_picks=ops.forward_path(steps, batch, hidden, len(set(model.periods)))))
    return rows


def median(row: dict, model: str) -> float:
    return row["times"][model]["median_us"]


# Per section: (heading, width, format, value of a row), the columns of its printed table.
COLUMNS = {
    "step": [("threads", 7, "", lambda r: r["threads"]), ("B", 3, "", lambda r: r["batch"]),
             ("H", 5, "", lambda r: r["hidden"]), ("CW cell", 9, ".1f", lambda r: median(r, "cwrnn_cell")),
             ("RNNCell", 9, ".1f", lambda r: median(r, "rnn_cell")),
             ("LSTMCell", 9, ".1f", lambda r: median(r, "lstm_cell")),
             ("vs RNN", 7, ".2f", lambda r: r["speedup_vs_rnn_cell"]),
             ("vs LSTM", 7, ".2f", lambda r: r["speedup_vs_lstm_cell"]), ("work", 6, ".1f", lambda r: r["work_ratio"])],
    "chunk": [("threads", 7, "", lambda r: r["threads"]), ("B", 3, "", lambda r: r["batch"]),
              ("H", 5, "", lambda r: r["hidden"]), ("chunk", 5, "", lambda r: r["chunk"]),
              ("CW Stream", 9, ".2f", lambda r: median(r, "cwrnn_stream")), ("nn.RNN", 9, ".2f", lambda r: median(r, "rnn")),
              ("vs RNN", 7, ".2f", lambda r: r["speedup_vs_rnn"])],
    "crossover": [("B", 3, "", lambda r: r["batch"]), ("H", 5, "", lambda r: r["hidden"]),
                  ("T", 5, "", lambda r: r["steps"]), ("module-major", 12, ".2f", lambda r: median(r, "module_major")),
                  ("time-major", 10, ".2f", lambda r: median(r, "time_major")),
                  ("time-major speed-up", 19, ".2f", lambda r: r["time_major_speedup"]),
                  ("T*H*B^0.6", 10, ".3g", lambda r: r["rule_cost"]), ("rule picks", 12, "", lambda r: r["rule_picks"])],
}
NOTES = {"crossover": "; the rule (csrc/cpu/policy.h): time-major when T*H*B^0.6 is small"}


def table_text(section: str, rows: List[dict]) -> str:
    """us per step (medians); ratios end in x."""
    columns = COLUMNS[section]
    lines = [" ".join(f"{heading:>{width}}" for heading, width, _, _ in columns)
             + f"   (us per step, median{NOTES.get(section, '')})"]
    ratio = ("vs", "time-major s", "work")
    for row in rows:
        lines.append(" ".join(f"{value(row):>{width - 1}{spec}}x" if heading.startswith(ratio) else
                              f"{value(row):>{width}{spec}}" for heading, width, spec, value in columns))
    return "\n".join(lines)


def targets_text(rows: List[dict]) -> List[str]:
    lines = []
    for batch, hidden, minimum in TARGETS:
        match = [r for r in rows if r["section"] == "step" and r["threads"] == 1
                 and r["batch"] == batch and r["hidden"] == hidden]
        if match:
            got = match[0]["speedup_vs_rnn_cell"]
            lines.append(f"{'PASS' if got >= minimum else 'MISS'}  B={batch} H={hidden}: ClockworkRNNCell {got:.2f}x "
                         f"nn.RNNCell's speed per step (target >= {minimum:g}x; CPU, 1 thread, no_grad, median)")
    return lines


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
          f"float32, I={INPUT_SIZE}, {NUM_MODULES} exponential modules\n"
          "Speeds on a shared or busy machine vary from run to run; compare ratios within one table.")
    rows = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for section, table in (("step", step_table), ("chunk", chunk_table)):
            if section in args.sections:
                rows += table(plan, threads)
                print(f"\n== {section}, {threads} thread(s) ==\n" + table_text(section, rows_of(rows, section, threads)))
    if "crossover" in args.sections:
        torch.set_num_threads(thread_counts[0])
        rows += crossover_table(plan, thread_counts[0])
        print(f"\n== module-major vs time-major forward, {thread_counts[0]} thread(s) ==\n"
              + table_text("crossover", rows_of(rows, "crossover", thread_counts[0])))
    lines = targets_text(rows)
    if lines:
        print("\nTargets:\n" + "\n".join(lines))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{result_stem(args.mode, 'streaming')}.json"
        path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        print(f"wrote {path}")
    return 0


def rows_of(rows: List[dict], section: str, threads: int) -> List[dict]:
    return [r for r in rows if r["section"] == section and r["threads"] == threads]


if __name__ == "__main__":  # `python -m benchmarks.streaming`: the same as `python -m benchmarks streaming`
    raise SystemExit(main())
