"""What to measure: problem sizes, the sweeps behind the plots, the CPU targets and their minima
per instruction set, the extra rows (measured, no target), and the run modes (smoke, quick, full,
long)."""
from __future__ import annotations

from dataclasses import MISSING, dataclass, fields, replace
from typing import Dict, List, Optional, Tuple

from cwrnn_ext import exponential_periods, split_evenly

PASSES = ("forward", "forward_backward")
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
        """Whether a result record (a flat dict with the same field names) is for this config."""
        return record_config_key(record) == tuple(getattr(self, name) for name in CONFIG_FIELDS)

    @property
    def label(self) -> str:
        return (f"B={self.batch} T={self.steps} I={self.input_size} H={self.hidden_size} "
                f"g={self.num_modules} {self.dtype}" + (" bidirectional" if self.bidirectional else ""))


# A field added to Config after results were committed reads as its default in older records.
_FIELD_DEFAULTS = {f.name: f.default for f in fields(Config) if f.default is not MISSING}


def record_config_key(record: dict) -> tuple:
    """The CONFIG_FIELDS values of a result record, defaults filled in for records that predate a field."""
    return tuple(record[name] if name not in _FIELD_DEFAULTS else record.get(name, _FIELD_DEFAULTS[name])
                 for name in CONFIG_FIELDS)


@dataclass(frozen=True)
class Sweep:
    """Configs that differ along one axis (a Config field); each sweep becomes one plot."""
    axis: str
    configs: Tuple[Config, ...]
    models: Optional[Tuple[str, ...]] = None  # None: every model


@dataclass(frozen=True)
class Target:
    """A speed-up of the CW-RNN kernel over nn.RNN (same hidden size, CPU) with a required minimum
    per CPU capability (TARGET_MINIMA)."""
    key: str
    config: Config
    pass_name: str


@dataclass(frozen=True)
class Extra:
    """A configuration measured for its own table and the targets plot, with no target and no
    verdict (e.g. the bidirectional layer at a target's size)."""
    name: str
    config: Config
    models: Optional[Tuple[str, ...]] = None  # None: every model


@dataclass(frozen=True)
class Plan:
    mode: str
    targets: Tuple[Target, ...]
    extras: Tuple[Extra, ...]
    sweeps: Tuple[Sweep, ...]
    min_run_time: float             # seconds per Timer measurement
    min_repeats: int                # at least this many timed calls per median
    rounds: int                     # models are timed interleaved, in this many rounds
    max_run_time: float             # but no more than this many seconds of timed runs per model
    reference_limit: Optional[float]  # run the slow reference only up to this many dense MACs
    target_models: Optional[Tuple[str, ...]] = None  # None: every model, both passes, on the targets;
    # else only these models and only the pass each target judges


# The acceptance targets (float32, exponential periods, 2 threads, against nn.RNN timed in the same
# run, each model in a plain fresh process).
TARGET_A = Config(batch=32, steps=512, input_size=64, hidden_size=512, num_modules=8)
TARGET_C = Config(batch=1, steps=4096, input_size=16, hidden_size=256, num_modules=8)
TARGET_D = Config(batch=32, steps=256, input_size=64, hidden_size=128, num_modules=8)   # small modules
TARGET_E = Config(batch=32, steps=256, input_size=64, hidden_size=256, num_modules=12)  # k about 21
CPU_TARGETS = (
    Target("a", TARGET_A, "forward"),
    Target("b", TARGET_A, "forward_backward"),
    Target("c", TARGET_C, "forward"),
    Target("d", TARGET_D, "forward"),
    Target("e", TARGET_E, "forward_backward"),
)
# Minimum speed-ups by the CPU capability the kernel runs with (torch.backends.cpu.get_cpu_capability()
# names); a target missing here is measured and reported without a verdict.
TARGET_MINIMA: Dict[str, Dict[str, float]] = {
    "AVX512": {"a": 8.0, "b": 7.0, "c": 30.0, "d": 4.4, "e": 6.0},
    "AVX2": {"a": 10.0, "b": 8.0, "c": 25.0, "d": 5.0, "e": 6.0},
    "DEFAULT": {"a": 4.0, "c": 10.0},  # baseline x86-64
}
TARGET_THREADS = 2
# The bidirectional layer at target (a)/(b)'s size, against nn.RNN / nn.LSTM(bidirectional=True).
BIDIRECTIONAL_A = replace(TARGET_A, bidirectional=True)


def one_axis_sweeps(base: Config, hidden: Tuple[int, ...], modules: Tuple[int, ...],
                    steps: Tuple[int, ...], models: Optional[Tuple[str, ...]] = None) -> List[Sweep]:
    """Vary one of hidden size, number of modules, sequence length around `base`."""
    return [
        Sweep("hidden_size", tuple(replace(base, hidden_size=h) for h in hidden), models),
        Sweep("num_modules", tuple(replace(base, num_modules=g) for g in modules), models),
        Sweep("steps", tuple(replace(base, steps=t) for t in steps), models),
    ]


def smoke_plan() -> Plan:
    """Tiny sizes: exercises every code path in a few seconds; the numbers mean nothing."""
    base = Config(batch=2, steps=16, input_size=4, hidden_size=16, num_modules=4)
    # The targets' keys and passes on sweep points: no extra configs.
    targets = (Target("a", base, "forward"), Target("b", base, "forward_backward"),
               Target("c", replace(base, steps=8), "forward"),
               Target("d", replace(base, hidden_size=8), "forward"),
               Target("e", replace(base, num_modules=2), "forward_backward"))
    extras = (Extra("bidirectional", replace(base, bidirectional=True)),)  # every model
    sweeps = one_axis_sweeps(base, hidden=(8, 16), modules=(2, 4), steps=(8, 16))
    return Plan("smoke", targets, extras, tuple(sweeps), min_run_time=0.001, min_repeats=1, rounds=1,
                max_run_time=1.0, reference_limit=None)


def quick_plan() -> Plan:
    """The default: the CPU targets only, the kernel against nn.RNN, each target's pass only."""
    return Plan("quick", CPU_TARGETS, (), (), min_run_time=0.3, min_repeats=4, rounds=2, max_run_time=5.0,
                reference_limit=None, target_models=("cwrnn", "rnn"))


def full_plan() -> Plan:
    """The CPU targets with every model, target (a)'s size as a bidirectional layer, plus small
    sweeps (kernel, nn.RNN, nn.LSTM) for the plots (targets d and e are sweep points)."""
    base = Config(batch=32, steps=256, input_size=64, hidden_size=256, num_modules=8)
    sweeps = one_axis_sweeps(base, hidden=(128, 256, 512), modules=(4, 8, 12), steps=(128, 256, 512),
                             models=("cwrnn", "rnn", "lstm"))
    extras = (Extra("bidirectional", BIDIRECTIONAL_A, ("cwrnn", "rnn", "lstm")),)
    # The reference is a Python loop over dense steps: run it only where that takes under a second.
    return Plan("full", CPU_TARGETS, extras, tuple(sweeps), min_run_time=0.3, min_repeats=4, rounds=2,
                max_run_time=5.0, reference_limit=1.5e9)


def long_plan() -> Plan:
    """Every model over hidden size, number of modules and length, for batch 32 and batch 1, and
    at target (a)'s size as a bidirectional layer."""
    batched = Config(batch=32, steps=512, input_size=64, hidden_size=512, num_modules=8)
    single = Config(batch=1, steps=2048, input_size=16, hidden_size=256, num_modules=8)
    sweeps = (one_axis_sweeps(batched, hidden=(128, 256, 512, 1024), modules=(4, 8, 12),
                              steps=(128, 256, 512, 1024, 2048))
              + one_axis_sweeps(single, hidden=(128, 256, 512, 1024), modules=(4, 8, 12),
                                steps=(256, 512, 1024, 2048, 4096)))
    extras = (Extra("bidirectional", BIDIRECTIONAL_A),)
    return Plan("long", CPU_TARGETS, extras, tuple(sweeps), min_run_time=1.0, min_repeats=6, rounds=3,
                max_run_time=30.0, reference_limit=None)


PLANS = {"smoke": smoke_plan, "quick": quick_plan, "full": full_plan, "long": long_plan}
# Result files written before the modes were renamed (no "cpu_capability" in their meta): the plan
# that wrote them now has this name.
FORMER_MODES = {"quick": "full", "full": "long"}

# Float32 everywhere; on CUDA bfloat16 as well.
DEVICE_DTYPES: Dict[str, Tuple[str, ...]] = {"cpu": ("float32",), "cuda": ("float32", "bfloat16")}


def with_dtype(config: Config, dtype: str) -> Config:
    return replace(config, dtype=dtype)
