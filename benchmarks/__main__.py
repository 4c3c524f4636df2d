"""`python -m benchmarks COMMAND [options]`: the benchmark's one entry point.

  speed      the kernel against nn.RNN (and more with --full / --long), each measurement in fresh
             processes, with the CPU targets' verdicts (benchmarks/speed.py)
  streaming  one step and short chunks against nn.RNNCell / nn.LSTMCell (benchmarks/streaming.py)
  plots      redraw the PNGs of a result file written by `speed` (benchmarks/plots.py)

`python -m benchmarks COMMAND --help` lists each command's options. `python -m benchmarks.speed`
and `python -m benchmarks.streaming` are the same commands.
"""
import importlib
import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in ("speed", "streaming", "plots"):
        asked = argv[:1] in (["-h"], ["--help"])
        print(__doc__, file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    return importlib.import_module(f"benchmarks.{argv[0]}").main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
