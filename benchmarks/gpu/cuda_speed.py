"""NOT YET RUN ON A GPU (benchmarks/gpu/README.md).

The CUDA speed table: ClockworkRNN against cuDNN's nn.RNN (tanh) and nn.LSTM of the same hidden
size, forward (no_grad) and forward+backward, float32 with TF32 off; H in {256, 1024}, B in
{1, 32}, T = 1024, I = 64, g = 8 exponential periods. Times are medians of CUDA-event-timed
calls after warm-up; the CW-RNN forward is also timed replayed from a CUDA graph (no launch gaps).
Also prints the time per tick of the recurrences (the forward over its 2,040 group ticks), the
number csrc/cuda/NOTES.md predicts.

Run on a GPU machine (benchmarks/gpu/cuda_check.sh does):
    python -m benchmarks.gpu.cuda_speed --out DIR      # writes DIR/cuda_speed.json and .csv
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

import cwrnn_ext

from ..machine import run_metadata

HIDDEN = (256, 1024)
BATCH = (1, 32)
STEPS, INPUT, MODULES = 1024, 64, 8
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "out" / "cuda_speed"  # ignored by git


def median_ms(fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def passes(model, x):
    def forward():
        with torch.no_grad():
            return model(x)

    xg = x.detach().requires_grad_(True)
    wrt = [xg] + [p for p in model.parameters() if p.requires_grad]

    def forward_backward():
        out = model(xg)
        output, h_n = out[0], out[1]
        if isinstance(h_n, tuple):  # nn.LSTM: (h_n, c_n)
            h_n = h_n[0]
        return torch.autograd.grad(output.sum() + h_n.sum(), wrt)

    return forward, forward_backward


def graphed_forward(model, x):
    """The forward replayed from a CUDA graph, or None where capture fails."""
    static = x.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(side):
        for _ in range(3):
            model(static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.no_grad(), torch.cuda.graph(graph):
            model(static)
    except RuntimeError as error:
        print(f"  (CUDA graph capture failed: {error})")
        return None
    return graph.replay


def total_ticks(steps: int, modules: int) -> int:
    return sum((steps - 1) // (1 << i) + 1 for i in range(modules))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu.cuda_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per model and pass (default 20)")
    args = parser.parse_args(argv)
    if not (torch.cuda.is_available() and cwrnn_ext.cuda_kernels_available()):
        print("needs a GPU and cwrnn_ext built with its CUDA kernels")
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda")
    torch.manual_seed(0)
    rows = []
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, float32, TF32 off, T={STEPS}, "
          f"I={INPUT}, g={MODULES} (median ms of {args.repeats} CUDA-event-timed calls)")
    header = (f"{'H':>5} {'B':>3} | {'CW fwd':>8} {'graph':>8} {'RNN fwd':>8} {'LSTM fwd':>8} {'xRNN':>5} | "
              f"{'CW f+b':>8} {'RNN f+b':>8} {'LSTM f+b':>8} {'xRNN':>5} | {'us/tick':>7}")
    print(header)
    for hidden in HIDDEN:
        for batch in BATCH:
            x = torch.randn(STEPS, batch, INPUT, device=device)
            models = {
                "cwrnn": cwrnn_ext.ClockworkRNN(INPUT, hidden, num_modules=MODULES, device=device),
                "rnn": nn.RNN(INPUT, hidden, device=device),
                "lstm": nn.LSTM(INPUT, hidden, device=device),
            }
            row = {"hidden": hidden, "batch": batch, "steps": STEPS, "input": INPUT, "modules": MODULES}
            for name, model in models.items():
                forward, forward_backward = passes(model, x)
                row[f"{name}_forward_ms"] = median_ms(forward, 3, args.repeats)
                row[f"{name}_forward_backward_ms"] = median_ms(forward_backward, 2, max(5, args.repeats // 2))
            replay = graphed_forward(models["cwrnn"], x)
            row["cwrnn_forward_graph_ms"] = median_ms(replay, 3, args.repeats) if replay else float("nan")
            best_forward = min(row["cwrnn_forward_ms"], row["cwrnn_forward_graph_ms"] if replay else float("inf"))
            row["cwrnn_us_per_tick"] = 1000 * best_forward / total_ticks(STEPS, MODULES)
            rows.append(row)
            print(f"{hidden:>5} {batch:>3} | {row['cwrnn_forward_ms']:8.3f} {row['cwrnn_forward_graph_ms']:8.3f} "
                  f"{row['rnn_forward_ms']:8.3f} {row['lstm_forward_ms']:8.3f} "
                  f"{row['rnn_forward_ms'] / best_forward:5.2f} | {row['cwrnn_forward_backward_ms']:8.3f} "
                  f"{row['rnn_forward_backward_ms']:8.3f} {row['lstm_forward_backward_ms']:8.3f} "
                  f"{row['rnn_forward_backward_ms'] / row['cwrnn_forward_backward_ms']:5.2f} | "
                  f"{row['cwrnn_us_per_tick']:7.3f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"device": torch.cuda.get_device_name(),
            **run_metadata("benchmarks.gpu.cuda_speed", argv, torch.get_num_threads()),
            "tf32": False, "timing": "median of CUDA-event-timed calls after warm-up"}
    (args.out / "cuda_speed.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    with open(args.out / "cuda_speed.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"written: {args.out / 'cuda_speed.json'}, {args.out / 'cuda_speed.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
