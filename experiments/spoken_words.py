"""Experiment 2 of the Clockwork RNN paper: spoken-word classification.

Data: experiments/data/spoken_words.npz, a TIMIT substitute of 25 words x 7 synthetic voices
(5 train / 2 test), built by experiments/make_spoken_words.py; 13 normalised MFCC channels.

Models (sizes from the paper's Table 1, about 500 / 1k / 2.5k / 5k / 10k parameters):
SRN (torch.nn.RNN, tanh), LSTM (torch.nn.LSTM, forget-gate bias 5) and CW-RNN
(cwrnn_ext.ClockworkRNN, 7 modules, periods 1, 2, ..., 64), each followed by a linear softmax
layer over the 25 words.

Training as the paper: weights from N(0, 0.1^2) (biases 0), SGD with Nesterov momentum 0.9, learning rate
3e-4, cross-entropy, Gaussian input noise of std 0.6 while training; stop when the noise-free
training error has not improved for 5 epochs, or at --max-epochs (a cap the paper does not
have; the quick default's 40 stops some small networks that are still improving - see
"capped" in the output; with 200 no run reached it).

Choices the paper leaves open:
- The class is read from the output at each sequence's last valid step (h_n of the packed /
  length-masked batch): the word is known only once it has been heard, and the CW-RNN's slow
  modules exist to carry the start of the word - which decides the class - to the end.
- Updates are online (one sequence per step, --batch-size 1) as was usual in 2014. With
  --batch-size B the loss is summed over the batch, so 3e-4 stays a per-sequence step size.
- The reported network is the one at the stop (no restore of an earlier epoch).

Usage:
    python -m experiments.spoken_words                  # quick: 1 run, all sizes, <= 40 epochs
    python -m experiments.spoken_words --runs 100 --max-epochs 1000   # the paper's protocol

Run time on one CPU core: the quick default (15 trainings) took about 3 minutes; --runs 100
about 8 hours. Output: spoken_words.json in experiments/out/ (ignored by git), or in --out DIR;
--update-results rewrites the committed experiments/results/ instead.
"""
import argparse
import json
import os
import platform
import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

import cwrnn_ext

from .common import add_output_options, init_paper, make_parser, output_dir, parameter_count, progress

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "spoken_words.npz")
MODELS = ("SRN", "LSTM", "CW-RNN")
# Paper, Table 1: hidden units giving about 500 / 1k / 2.5k / 5k / 10k parameters.
SIZES = {
    "SRN": {500: 10, 1000: 18, 2500: 34, 5000: 54, 10000: 84},
    "LSTM": {500: 5, 1000: 8, 2500: 17, 5000: 26, 10000: 41},
    "CW-RNN": {500: 10, 1000: 19, 2500: 40, 5000: 65, 10000: 102},
}
# Paper, largest networks: test error % mean and std over 100 runs.
PAPER_LARGEST = {"SRN": (66.8, 4.7), "LSTM": (34.2, 5.6), "CW-RNN": (16.8, 3.5)}
NUM_CLASSES = 25
CW_MODULES = 7


# ----------------------------------------------------------------------------------- data

def load_data(path=DATA, words=None):
    """Return (train, test): lists of (features (T, 13) float32 tensor, label int).

    `words` keeps only the first `words` classes (for small tests)."""
    d = np.load(path)
    off = d["offsets"]
    seqs = [torch.from_numpy(d["frames"][off[i]:off[i + 1]].astype(np.float32))
            for i in range(len(off) - 1)]
    keep = [i for i in range(len(seqs)) if words is None or d["labels"][i] < words]
    train = [(seqs[i], int(d["labels"][i])) for i in keep if not d["is_test"][i]]
    test = [(seqs[i], int(d["labels"][i])) for i in keep if d["is_test"][i]]
    return train, test


def collate(items):
    """Pad a list of (seq, label) to (T, B, 13) with lengths and labels."""
    seqs, labels = zip(*items)
    lengths = torch.tensor([len(s) for s in seqs])
    return pad_sequence(list(seqs)), lengths, torch.tensor(labels)


# --------------------------------------------------------------------------------- models

class WordClassifier(nn.Module):
    """Recurrent layer + linear softmax read from the state at each sequence's last step."""

    def __init__(self, kind, hidden, inputs=13, classes=NUM_CLASSES):
        super().__init__()
        self.kind = kind
        if kind == "SRN":
            self.rnn = nn.RNN(inputs, hidden, nonlinearity="tanh")
        elif kind == "LSTM":
            self.rnn = nn.LSTM(inputs, hidden)
        elif kind == "CW-RNN":
            self.rnn = cwrnn_ext.ClockworkRNN(inputs, hidden, num_modules=CW_MODULES)
        else:
            raise ValueError("unknown model kind %r" % kind)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x, lengths):
        if self.kind == "CW-RNN":
            _, h_n = self.rnn(x, lengths=lengths)
        else:
            packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
            _, h_n = self.rnn(packed)
            if self.kind == "LSTM":
                h_n = h_n[0]
        return self.out(h_n[-1])


def init_weights(model):
    """The paper's init with zero biases (the inputs drive the state, so nothing needs a random bias)."""
    init_paper(model, model.rnn, random_biases=False)


def count_params(model):
    """Free parameters as the paper's Table 1 counts them (see common.parameter_count)."""
    return parameter_count(model, model.rnn)


# ------------------------------------------------------------------------------- training

@torch.no_grad()
def error_rate(model, batch):
    """Noise-free misclassification rate (%) of one padded batch."""
    x, lengths, labels = batch
    wrong = (model(x, lengths).argmax(1) != labels).sum().item()
    return round(100.0 * wrong / len(labels), 2)


def train_epoch(model, opt, train, batch_size, noise, gen):
    """One pass in random order with Gaussian input noise; returns the mean loss."""
    order = torch.randperm(len(train), generator=gen).tolist()
    total = 0.0
    for i in range(0, len(order), batch_size):
        x, lengths, labels = collate([train[j] for j in order[i:i + batch_size]])
        x = x + noise * torch.randn(x.shape, generator=gen)
        # Summed loss: lr is the per-sequence step whatever the batch size.
        loss = nn.functional.cross_entropy(model(x, lengths), labels, reduction="sum")
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item()
    return total / len(train)


def run_one(kind, hidden, train, test, seed, max_epochs, patience=5, batch_size=1,
            lr=3e-4, momentum=0.9, noise=0.6):
    """Train one network with the paper's stopping rule; return its record."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = WordClassifier(kind, hidden)
    init_weights(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True)
    train_all, test_all = collate(train), collate(test)
    best, since_best, epoch, start = error_rate(model, train_all), 0, 0, time.time()
    while since_best < patience and epoch < max_epochs:
        train_epoch(model, opt, train, batch_size, noise, gen)
        epoch += 1
        err = error_rate(model, train_all)
        best, since_best = (err, 0) if err < best else (best, since_best + 1)
    return dict(model=kind, hidden=hidden, params=count_params(model), seed=seed,
                epochs=epoch, capped=since_best < patience, train_error=err if epoch else best,
                best_train_error=best, test_error=error_rate(model, test_all),
                seconds=time.time() - start)


# ------------------------------------------------------------------------------ reporting

def summarize(records):
    """Mean / std of test error per (model, size) budget."""
    rows = []
    for budget in sorted({r["budget"] for r in records}):
        for kind in MODELS:
            rs = [r for r in records if r["budget"] == budget and r["model"] == kind]
            if not rs:
                continue
            err = np.array([r["test_error"] for r in rs])
            rows.append(dict(budget=budget, model=kind, hidden=rs[0]["hidden"],
                             params=rs[0]["params"], runs=len(rs), test_mean=err.mean(),
                             test_std=err.std(), train_mean=np.mean([r["train_error"] for r in rs]),
                             epochs_mean=np.mean([r["epochs"] for r in rs]),
                             capped=sum(r["capped"] for r in rs)))
    return rows


def format_table(rows):
    lines = ["budget  model    hidden params  test err %     train err %  epochs  capped"]
    for r in rows:
        lines.append("%6d  %-7s %6d %6d  %5.1f +- %4.1f  %10.1f  %6.1f  %3d/%d" % (
            r["budget"], r["model"], r["hidden"], r["params"], r["test_mean"], r["test_std"],
            r["train_mean"], r["epochs_mean"], r["capped"], r["runs"]))
    lines.append("paper, largest networks: " + ", ".join(
        "%s %.1f +- %.1f" % (k, m, s) for k, (m, s) in PAPER_LARGEST.items()))
    return "\n".join(lines)


def build_parser():
    p = make_parser("spoken_words", __doc__)
    p.add_argument("--runs", type=int, default=1, help="runs (seeds) per model and size (paper: 100)")
    p.add_argument("--sizes", type=int, nargs="+", default=sorted(SIZES["SRN"]),
                   choices=sorted(SIZES["SRN"]), help="parameter budgets (Table 1 gives the hidden sizes)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="models to train")
    p.add_argument("--max-epochs", type=int, default=40,
                   help="cap on epochs (the paper has none; use a large value for it)")
    p.add_argument("--patience", type=int, default=5,
                   help="stop when the noise-free training error has not improved for this many epochs "
                        "(paper: 5)")
    p.add_argument("--batch-size", type=int, default=1,
                   help="sequences per update, loss summed over them; 1 = online updates")
    p.add_argument("--words", type=int, default=None,
                   help="use only the first N of the 25 words (default: all; small values for quick checks)")
    p.add_argument("--data", default=DATA, metavar="NPZ",
                   help="features made by experiments.make_spoken_words "
                        "(default: the committed experiments/data/spoken_words.npz)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    add_output_options(p, "spoken_words.json")
    return p


def parse_args(argv=None):
    args = build_parser().parse_args(argv)
    args.out = str(output_dir(args))
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)  # tiny recurrent nets: threads only add overhead
    train, test = load_data(args.data, args.words)
    jobs = [(b, k, s) for b in args.sizes for k in args.models for s in range(args.runs)]
    records, start = [], time.time()
    for budget, kind, seed in progress(jobs, len(jobs), "trainings"):
        rec = run_one(kind, SIZES[kind][budget], train, test, seed, args.max_epochs,
                      args.patience, args.batch_size)
        records.append(dict(rec, budget=budget))
    rows = summarize(records)
    print(format_table(rows))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "spoken_words.json")
    with open(path, "w") as f:
        json.dump(dict(config=vars(args), train_sequences=len(train), test_sequences=len(test),
                       wall_seconds=time.time() - start, torch=torch.__version__,
                       machine=platform.platform(), summary=rows, runs=records,
                       paper_largest=PAPER_LARGEST), f, indent=1, default=float)
    print("wrote %s (%.0f s)" % (path, time.time() - start))
    return rows


if __name__ == "__main__":
    main()
