"""Runs a plan on one device: every config, every model, both passes, each measured in fresh
processes (benchmarks/worker.py); returns flat records."""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import torch

from .configs import PASSES, Config, Plan, with_dtype
from .load import LoadMeter
from .memory import peak_memory_bytes
from .models import CLOCKWORK_MODELS, MODEL_LABELS, MODEL_NAMES, build_models
from .progress import Progress
from .timing import forward_backward_fn, summarise
from .worker import FreshProcesses, Task
from .work import srn_macs, work_ratio


@dataclass(frozen=True)
class Settings:
    mode: str
    device: torch.device
    threads: int
    models: Tuple[str, ...]      # the models the user asked for (all by default)
    min_run_time: float
    min_repeats: int
    rounds: int
    max_run_time: float
    reference_limit: Optional[float]
    memory: bool
    cpu_capability: str          # the instruction set the CW-RNN kernel runs with (in this process)
    seed: int = 0

    def task(self, config: Config, model: str, pass_name: str) -> Task:
        return Task(config, model, pass_name, self.device.type, self.threads, self.min_run_time,
                    self.min_repeats, self.max_run_time, self.rounds, self.seed)

    @property
    def timeout_s(self) -> float:
        """A measuring process that takes longer is stuck (its timed calls stop at max_run_time)."""
        return max(1800.0, 60 * self.max_run_time)


Planned = Tuple[Config, Tuple[str, ...], Tuple[str, ...]]  # a config, its models, its passes


def planned_configs(plan: Plan, dtype: str, models: Tuple[str, ...]) -> List[Planned]:
    """Unique configs in run order (targets first, then the extra rows), each with the union of
    models and passes wanted there."""
    wanted: Dict[Config, Tuple[set, set]] = {}

    def want(config: Config, names, passes) -> None:
        entry = wanted.setdefault(with_dtype(config, dtype), (set(), set()))
        entry[0].update(names)
        entry[1].update(passes)

    for target in plan.targets:
        if plan.target_models is None:
            want(target.config, models, PASSES)
        else:
            want(target.config, plan.target_models, (target.pass_name,))
    for extra in plan.extras:
        want(extra.config, extra.models or models, PASSES)
    for sweep in plan.sweeps:
        for config in sweep.configs:
            want(config, sweep.models or models, PASSES)
    return [(config, tuple(m for m in MODEL_NAMES if m in names and m in models),
             tuple(p for p in PASSES if p in passes)) for config, (names, passes) in wanted.items()]


def skip_reason(name: str, config: Config, settings: Settings) -> Optional[str]:
    """Why a model is not run at this size, or None."""
    if name == "cwrnn_reference" and settings.reference_limit is not None:
        dense = srn_macs(config.input_size, config.hidden_size, config.steps, config.batch) * config.directions
        if dense > settings.reference_limit:
            return (f"pure-PyTorch reference skipped in {settings.mode} mode at this size "
                    f"({dense:.2g} dense MACs > {settings.reference_limit:.2g}); run --full")
    return None


def config_tasks(config: Config, names: Tuple[str, ...], passes: Tuple[str, ...], settings: Settings) -> int:
    """Measuring processes a config takes."""
    runnable = sum(1 for name in names if skip_reason(name, config, settings) is None)
    return runnable * len(passes) * settings.rounds


# For the time estimate only: nn.RNN on 2 idle cores (benchmarks/RESULTS.md) costs about this per
# billion multiply-adds and per step, and a measuring process this much besides its calls.
IDLE_S_PER_GMAC, IDLE_S_PER_STEP, PROCESS_S = 0.035, 11e-6, 0.3


def config_weight(config: Config, names: Tuple[str, ...], passes: Tuple[str, ...], settings: Settings) -> float:
    """A config's expected seconds on an idle machine, every model priced as nn.RNN; the progress
    display scales it by the slowdown measured on the configurations already done."""
    dense = srn_macs(config.input_size, config.hidden_size, config.steps, config.batch) * config.directions
    per_round = 0.0
    for pass_name in passes:
        factor = 3 if pass_name == "forward_backward" else 1
        call = factor * (IDLE_S_PER_GMAC * dense / 1e9 + IDLE_S_PER_STEP * config.steps * config.directions)
        timed = min(max(settings.min_run_time, settings.min_repeats * call), settings.max_run_time) / settings.rounds
        per_round += PROCESS_S + 2 * call + timed  # the cold call and the warm-up call, then the timed ones
    runnable = sum(1 for name in names if skip_reason(name, config, settings) is None)
    return runnable * per_round * settings.rounds


def run_config(config: Config, names: Tuple[str, ...], passes: Tuple[str, ...], settings: Settings,
               processes: FreshProcesses, progress: Progress) -> List[dict]:
    """Every model and pass wanted on one config, `rounds` times interleaved (A B C, A B C, ...), each
    time in a fresh process; records carry the ratios and the load measured meanwhile."""
    reasons = {name: skip_reason(name, config, settings) for name in names}
    results: Dict[Tuple[str, str], List[dict]] = {}
    meter = LoadMeter(settings.threads)
    meter.start()
    for _ in range(settings.rounds):
        for pass_name in passes:
            for name in names:
                if reasons[name] is not None:
                    continue
                earlier = results.setdefault((name, pass_name), [])
                if earlier and earlier[0]["status"] != "ok":  # failed once: it fails again
                    progress.task_done()
                    continue
                result = processes.run(settings.task(config, name, pass_name), settings.timeout_s)
                meter.add_child(result.get("cpu_s"))
                earlier.append(result)
                progress.task_done()
    load = meter.stop()
    models = build_models(config, names, settings.device, getattr(torch, config.dtype), settings.seed)
    records = []
    for pass_name in passes:
        for name in names:
            record = base_record(config, settings, models[name], pass_name, load)
            if reasons[name] is not None:
                record["status"] = "skipped: " + reasons[name]
            else:
                record.update(combine(results[(name, pass_name)]))
                if settings.memory and pass_name == "forward_backward" and record["status"] == "ok":
                    warm_up = record["median_ms"] < 1e3  # slow models: one call is plenty
                    record["peak_memory_mib"] = peak_memory_mib(models[name], config, settings, warm_up)
            records.append(record)
    add_ratios(records, config)
    return records


def peak_memory_mib(model, config: Config, settings: Settings, warm_up: bool) -> Optional[float]:
    """Measured here, not in the measuring processes: the peak is a sum of allocation sizes, which
    the heap's state does not change, and the profiler costs a second or two to start per process."""
    torch.manual_seed(settings.seed)
    input = torch.randn(config.steps, config.batch, config.input_size, device=settings.device,
                        dtype=getattr(torch, config.dtype))
    fn = forward_backward_fn(model, input)
    if warm_up:
        fn()  # lazy initialisation is not part of the peak
    peak = peak_memory_bytes(fn, settings.device)
    return None if peak is None else peak / 2 ** 20


def combine(rounds: List[dict]) -> dict:
    """One record's timing fields from the results of its rounds."""
    failed = [r["status"] for r in rounds if r["status"] != "ok"]
    if failed:
        return {"status": failed[0]}
    warm = summarise([t for r in rounds for t in r["warm_s"]])
    colds = [r["cold_s"] for r in rounds]
    return {
        "median_ms": warm.median_s * 1e3, "q1_ms": warm.q1_s * 1e3, "q3_ms": warm.q3_s * 1e3,
        "iqr_ms": (warm.q3_s - warm.q1_s) * 1e3, "min_ms": warm.min_s * 1e3, "samples": warm.samples,
        "calls": sum(r["calls"] for r in rounds),
        "cold_ms": statistics.median(colds) * 1e3,
        "cold_runs_ms": " ".join(f"{c * 1e3:.3g}" for c in colds),
        "faults_per_call": statistics.median(r["warm_faults"] for r in rounds),
        "cold_faults": statistics.median(r["cold_faults"] for r in rounds),
        "cpu_capability": rounds[0]["cpu_capability"],  # as the measuring process reported it
    }


def base_record(config: Config, settings: Settings, model, pass_name: str, load: dict) -> dict:
    return {
        "mode": settings.mode, "device": settings.device.type, "dtype": config.dtype,
        "threads": settings.threads, "cpu_capability": settings.cpu_capability,
        "batch": config.batch, "steps": config.steps,
        "input_size": config.input_size, "hidden_size": config.hidden_size,
        "num_modules": config.num_modules, "bidirectional": config.bidirectional,
        "periods": " ".join(map(str, config.periods)),
        "model": model.name, "model_label": MODEL_LABELS[model.name],
        "model_hidden_size": model.hidden_size, "parameters": model.parameters,
        "pass": pass_name, "status": "ok",
        "median_ms": None, "q1_ms": None, "q3_ms": None, "iqr_ms": None, "min_ms": None,
        "samples": None, "calls": None, "cold_ms": None, "cold_runs_ms": None,
        "faults_per_call": None, "cold_faults": None, "peak_memory_mib": None,
        "other_cores": load["other_cores"], "load_1min": load["load_1min"], "load_busy": load["busy"],
        "load_threshold": load["threshold"],
    }


def add_ratios(records: List[dict], config: Config) -> None:
    """Speed-ups vs nn.RNN and nn.LSTM (same H, same pass), warm (medians) and cold (first calls),
    and for the CW-RNN models the theoretical work ratio and the fraction of it realised (warm
    speed-up vs nn.RNN / work ratio)."""
    # Per direction: a bidirectional layer doubles the work of both sides, not their ratio.
    theory = work_ratio(config.periods, config.module_sizes, config.input_size, config.steps)
    warm = {(r["model"], r["pass"]): r["median_ms"] for r in records}
    cold = {(r["model"], r["pass"]): r["cold_ms"] for r in records}
    for record in records:
        for baseline in ("rnn", "lstm"):
            for suffix, times in (("", warm), ("_cold", cold)):
                own, other = times[(record["model"], record["pass"])], times.get((baseline, record["pass"]))
                record[f"speedup_vs_{baseline}{suffix}"] = other / own if own and other else None
        clockwork = record["model"] in CLOCKWORK_MODELS
        record["work_ratio"] = theory if clockwork else None
        speedup = record["speedup_vs_rnn"]
        record["realised"] = speedup / theory if clockwork and speedup else None


def run_plan(plan: Plan, dtype: str, settings: Settings, progress_label: str) -> Iterator[Tuple[Config, List[dict]]]:
    """Yields (config, its records) one config at a time, so callers can save and print as they go."""
    configs = planned_configs(plan, dtype, settings.models)
    processes = FreshProcesses()
    progress = Progress(progress_label, [(config_weight(*planned, settings), config_tasks(*planned, settings))
                                         for planned in configs])
    for config, names, passes in configs:
        progress.start_config(config.label)
        records = run_config(config, names, passes, settings, processes, progress)
        progress.end_config()
        yield config, records
