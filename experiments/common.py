"""What both paper experiments share: the paper's initialisation, its parameter count, a
progress bar, and the command line's help and output options."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

import cwrnn_ext
from cwrnn_ext.layout import allowed_mask

INIT_STD = 0.1  # "weights from N(0, 0.1^2)"
LSTM_FORGET_BIAS = 5.0


def forbidden_mask(rnn: cwrnn_ext.ClockworkRNN) -> torch.Tensor:
    """(H, H) True on the fast->slow blocks of weight_hh that the CW-RNN never uses."""
    return ~allowed_mask(rnn.periods, rnn.module_sizes, rnn.weight_hh_l0.device)


def init_paper(net: nn.Module, rnn: nn.Module, random_biases: bool) -> None:
    """Every weight from N(0, 0.1^2); biases the same (`random_biases`) or zero; then an LSTM's
    forget-gate bias set to 5 and a CW-RNN's unused blocks set to 0."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "bias" in name and not random_biases:
                p.zero_()
            else:
                p.normal_(0.0, INIT_STD)
        if isinstance(rnn, nn.LSTM):
            # gate order (input, forget, cell, output); bias_ih + bias_hh is used: 5 in one, 0 in the other
            h = rnn.hidden_size
            rnn.bias_ih_l0[h:2 * h].fill_(LSTM_FORGET_BIAS)
            rnn.bias_hh_l0[h:2 * h].zero_()
        if isinstance(rnn, cwrnn_ext.ClockworkRNN):
            # the library never reads them; zeros keep the tensor honest for counting and saving
            rnn.weight_hh_l0.masked_fill_(forbidden_mask(rnn), 0.0)


def parameter_count(net: nn.Module, rnn: nn.Module, skip: tuple[str, ...] = ()) -> int:
    """Trainable numbers as the paper's Table 1 counts them: a CW-RNN's unused blocks do not
    count and its periods do. Parameters whose names start with one of `skip` are left out."""
    count = sum(p.numel() for name, p in net.named_parameters() if not name.startswith(skip))
    if isinstance(rnn, cwrnn_ext.ClockworkRNN):
        count -= int(forbidden_mask(rnn).sum()) - len(rnn.periods)
    return count


def progress(items, total: int, desc: str):
    """tqdm when installed, else a line on stderr about every 5 %."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _plain_progress(items, total, desc)
    return tqdm(items, total=total, desc=desc, file=sys.stderr)


def _plain_progress(items, total: int, desc: str):
    step, start = max(1, total // 20), time.time()
    for i, item in enumerate(items):
        if i % step == 0:
            print(f"{desc}: [{i}/{total}] {time.time() - start:.0f} s", file=sys.stderr, flush=True)
        yield item


HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "out"  # ignored by git (experiments/.gitignore)
RESULTS_DIR = HERE / "results"  # committed; discussed in experiments/RESULTS.md


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and shows every option's default."""

    def _get_help_string(self, action):
        help = action.help or ""
        default = action.default
        hidden = default is None or default is False or default == [] or default == argparse.SUPPRESS
        if action.option_strings and "%(default)" not in help and "(default" not in help and not hidden:
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
            help += " (default: " + shown.replace("%", "%%") + ")"
        return help


def make_parser(module: str, description: str) -> argparse.ArgumentParser:
    """A parser whose usage line reads `python -m experiments.<module>`."""
    return argparse.ArgumentParser(prog=f"python -m experiments.{module}", description=description,
                                   formatter_class=HelpFormatter)


def add_output_options(parser: argparse.ArgumentParser, files: str) -> None:
    """--out DIR (default: the ignored experiments/out/) or --update-results (the committed
    experiments/results/): committed results change only when asked for."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=None, metavar="DIR",
                       help=f"folder for {files} (default: experiments/out/, which git ignores)")
    where.add_argument("--update-results", action="store_true",
                       help=f"write {files} to experiments/results/, the committed results that "
                            f"experiments/RESULTS.md discusses, instead of --out")


def output_dir(args: argparse.Namespace) -> Path:
    if args.update_results:
        return RESULTS_DIR
    return OUT_DIR if args.out is None else args.out
