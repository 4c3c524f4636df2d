"""What to measure: problem sizes, the CPU targets and their minima per instruction set, the sweeps
behind the plots, how long to time, and the plans (smoke, quick, full, long)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, NamedTuple, Optional, Tuple

from cwrnn_ext import exponential_periods, split_evenly

PASSES = ("forward", "forward_backward")
MODEL_LABELS = {  # the models compared (benchmarks/models.py builds them)
    "cwrnn": "CW-RNN kernel",
    "cwrnn_reference": "CW-RNN reference",
    "cwrnn_naive": "CW-RNN dense-masked",
    "rnn": "nn.RNN same H",
    "lstm": "nn.LSTM same H",
    "lstm_same_params": "nn.LSTM same params",
}
MODEL_NAMES = tuple(MODEL_LABELS)
CONFIG_FIELDS = ("batch", "steps", "input_size", "hidden_size", "num_modules", "dtype", "bidirectional")


@dataclass(frozen=True)
class Config:
    """One problem size. Periods are exponential (1, 2, 4, ...), module sizes split evenly."""
    batch: int
    steps: int
    input_size: int
    hidden_size: int
    num_modules: int
    dtype: str = "float32"
    bidirectional: bool = False  # every model as a bidirectional layer of this H per direction

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def periods(self) -> List[int]:
        return exponential_periods(self.num_modules)

    @property
    def module_sizes(self) -> List[int]:
        return split_evenly(self.hidden_size, self.num_modules)

    def matches(self, record: dict) -> bool:
        """Whether a result record (a flat dict with the same field names) is for this config;
        records written before `bidirectional` existed are unidirectional."""
        return all((record.get(name, False) if name == "bidirectional" else record[name]) == getattr(self, name)
                   for name in CONFIG_FIELDS)

    @property
    def label(self) -> str:
        return (f"B={self.batch} T={self.steps} I={self.input_size} H={self.hidden_size} "
                f"g={self.num_modules} {self.dtype}" + (" bidirectional" if self.bidirectional else ""))


class Target(NamedTuple):
    """A speed-up of the CW-RNN kernel over nn.RNN (same hidden size) in one pass, with a required
    minimum per CPU capability (TARGET_MINIMA)."""
    key: str
    config: Config
    pass_name: str


class Sweep(NamedTuple):
    """Configs that differ along one axis (a Config field); each axis becomes one plot."""
    axis: str
    configs: Tuple[Config, ...]
    models: Optional[Tuple[str, ...]] = None  # None: every model


@dataclass(frozen=True)
class Timing:
    """How long each model and pass is timed on a config, over `rounds` fresh processes."""
    min_run_time: float  # seconds of timed calls over all rounds ...
    min_repeats: int     # ... or this many calls if that takes longer ...
    max_run_time: float  # ... but no more than this
    rounds: int

    def budget_s(self, one_call_s: float) -> float:
        """Seconds of timed calls in one round."""
        return min(max(self.min_run_time, self.min_repeats * one_call_s), self.max_run_time) / self.rounds


@dataclass(frozen=True)
class Plan:
    mode: str
    targets: Tuple[Target, ...]
    timing: Timing
    sweeps: Tuple[Sweep, ...] = ()
    # Target (a)'s size as a bidirectional layer, measured for its table and the targets plot with
    # no target: these models (none: no such row).
    bidirectional_models: Tuple[str, ...] = ()
    reference_limit: Optional[float] = None  # run the slow reference only up to this many dense MACs
    target_models: Optional[Tuple[str, ...]] = None  # None: every model and pass on the targets;
    # else only these models and only the pass each target judges

    @property
    def bidirectional(self) -> Optional[Config]:
        return replace(self.targets[0].config, bidirectional=True) if self.bidirectional_models else None


# The acceptance targets: float32, exponential periods, 2 threads, against nn.RNN timed in the same
# run, each model in plain fresh processes.
TARGET_A = Config(batch=32, steps=512, input_size=64, hidden_size=512, num_modules=8)
TARGET_C = Config(batch=1, steps=4096, input_size=16, hidden_size=256, num_modules=8)
TARGET_D = Config(batch=32, steps=256, input_size=64, hidden_size=128, num_modules=8)   # small modules
TARGET_E = Config(batch=32, steps=256, input_size=64, hidden_size=256, num_modules=12)  # k about 21
CPU_TARGETS = (Target("a", TARGET_A, "forward"), Target("b", TARGET_A, "forward_backward"),
               Target("c", TARGET_C, "forward"), Target("d", TARGET_D, "forward"),
               Target("e", TARGET_E, "forward_backward"))
# Minimum speed-ups by the CPU capability the kernel runs with; a target missing here is reported
# without a verdict.
TARGET_MINIMA: Dict[str, Dict[str, float]] = {
    "AVX512": {"a": 8.0, "b": 7.0, "c": 30.0, "d": 4.4, "e": 6.0},
    "AVX2": {"a": 10.0, "b": 8.0, "c": 25.0, "d": 5.0, "e": 6.0},
    "DEFAULT": {"a": 4.0, "c": 10.0},  # baseline x86-64
}
TARGET_THREADS = 2


def one_axis_sweeps(base: Config, hidden, modules, steps, models=None) -> Tuple[Sweep, ...]:
    """Vary one of hidden size, number of modules, sequence length around `base`."""
    return (Sweep("hidden_size", tuple(replace(base, hidden_size=h) for h in hidden), models),
            Sweep("num_modules", tuple(replace(base, num_modules=g) for g in modules), models),
            Sweep("steps", tuple(replace(base, steps=t) for t in steps), models))


_SMOKE = Config(batch=2, steps=16, input_size=4, hidden_size=16, num_modules=4)
_FULL = Config(batch=32, steps=256, input_size=64, hidden_size=256, num_modules=8)
_LONG_BATCHED = Config(batch=32, steps=512, input_size=64, hidden_size=512, num_modules=8)
_LONG_SINGLE = Config(batch=1, steps=2048, input_size=16, hidden_size=256, num_modules=8)
_BASELINES = ("cwrnn", "rnn", "lstm")
PLANS: Dict[str, Plan] = {
    # Tiny sizes, every code path, the numbers mean nothing; the targets' keys and passes sit on sweep points.
    "smoke": Plan("smoke", (Target("a", _SMOKE, "forward"), Target("b", _SMOKE, "forward_backward"),
                            Target("c", replace(_SMOKE, steps=8), "forward"),
                            Target("d", replace(_SMOKE, hidden_size=8), "forward"),
                            Target("e", replace(_SMOKE, num_modules=2), "forward_backward")),
                  Timing(min_run_time=0.001, min_repeats=1, max_run_time=1.0, rounds=1),
                  one_axis_sweeps(_SMOKE, hidden=(8, 16), modules=(2, 4), steps=(8, 16)),
                  bidirectional_models=MODEL_NAMES),
    # The default: the targets only, the kernel against nn.RNN, each target's pass only.
    "quick": Plan("quick", CPU_TARGETS, Timing(min_run_time=0.3, min_repeats=4, max_run_time=5.0, rounds=2),
                  target_models=("cwrnn", "rnn")),
    # Every model on the targets (the reference only where it takes about a second), the bidirectional
    # row, small sweeps for the plots (targets d and e are sweep points).
    "full": Plan("full", CPU_TARGETS, Timing(min_run_time=0.3, min_repeats=4, max_run_time=5.0, rounds=2),
                 one_axis_sweeps(_FULL, hidden=(128, 256, 512), modules=(4, 8, 12), steps=(128, 256, 512),
                                 models=_BASELINES),
                 bidirectional_models=_BASELINES, reference_limit=1.5e9),
    # Every model over hidden size, number of modules and length, for batch 32 and batch 1.
    "long": Plan("long", CPU_TARGETS, Timing(min_run_time=1.0, min_repeats=6, max_run_time=30.0, rounds=3),
                 one_axis_sweeps(_LONG_BATCHED, hidden=(128, 256, 512, 1024), modules=(4, 8, 12),
                                 steps=(128, 256, 512, 1024, 2048))
                 + one_axis_sweeps(_LONG_SINGLE, hidden=(128, 256, 512, 1024), modules=(4, 8, 12),
                                   steps=(256, 512, 1024, 2048, 4096)),
                 bidirectional_models=MODEL_NAMES),
}
# Result files written before the modes were renamed (no "cpu_capability" in their meta, e.g. the
# committed results/quick_cpu.json): the plan that wrote them now has this name.
FORMER_MODES = {"quick": "full", "full": "long"}
