"""Runs a plan: every config, model and pass wanted, each measured in fresh processes
(benchmarks/measure.py), into flat records with their speed-ups; shows progress on stderr (a line
as each configuration starts and ends, and at least every 30 s in between, with an estimate of the
time left once a configuration has been measured)."""
from __future__ import annotations

import statistics
import sys
import time
from typing import Dict, Iterator, List, Optional, Tuple

import torch

from .configs import MODEL_LABELS, MODEL_NAMES, PASSES, Config, Plan
from .machine import LoadMeter
from .measure import FreshProcesses, Task, peak_memory_mib, summarise
from .models import CLOCKWORK_MODELS, build_models
from .work import srn_macs, work_ratio

Planned = Tuple[Config, Tuple[str, ...], Tuple[str, ...]]  # a config, its models, its passes
TIMING_FIELDS = ("median_ms", "q1_ms", "q3_ms", "iqr_ms", "min_ms", "samples", "calls", "cold_ms", "cold_runs_ms",
                 "faults_per_call", "cold_faults", "peak_memory_mib")


def planned_configs(plan: Plan) -> List[Planned]:
    """Unique configs in run order (targets, the bidirectional row, sweeps), each with the union of
    the models and passes wanted there."""
    wanted: Dict[Config, Tuple[set, set]] = {}

    def want(config: Config, names, passes) -> None:
        entry = wanted.setdefault(config, (set(), set()))
        entry[0].update(names or MODEL_NAMES)
        entry[1].update(passes)

    for target in plan.targets:
        want(target.config, plan.target_models, PASSES if plan.target_models is None else (target.pass_name,))
    if plan.bidirectional:
        want(plan.bidirectional, plan.bidirectional_models, PASSES)
    for sweep in plan.sweeps:
        for config in sweep.configs:
            want(config, sweep.models, PASSES)
    return [(config, tuple(m for m in MODEL_NAMES if m in names), tuple(p for p in PASSES if p in passes))
            for config, (names, passes) in wanted.items()]


def dense_macs(config: Config) -> int:
    return srn_macs(config.input_size, config.hidden_size, config.steps, config.batch) * config.directions


def skip_reason(name: str, config: Config, plan: Plan) -> Optional[str]:
    """Why a model is not run at this size, or None."""
    if name == "cwrnn_reference" and plan.reference_limit is not None and dense_macs(config) > plan.reference_limit:
        return (f"pure-PyTorch reference skipped in {plan.mode} mode at this size "
                f"({dense_macs(config):.2g} dense MACs > {plan.reference_limit:.2g}); run --long")
    return None


# For the time estimate only: nn.RNN on 2 idle cores (benchmarks/RESULTS.md) costs about this per
# billion multiply-adds and per step, and a measuring process this much besides its calls.
IDLE_S_PER_GMAC, IDLE_S_PER_STEP, PROCESS_S = 0.035, 11e-6, 0.3


def config_cost(planned: Planned, plan: Plan) -> Tuple[float, int]:
    """(expected seconds on an idle machine, every model priced as nn.RNN; measuring processes)."""
    config, names, passes = planned
    per_round = 0.0
    for pass_name in passes:
        factor = 3 if pass_name == "forward_backward" else 1
        call = factor * (IDLE_S_PER_GMAC * dense_macs(config) / 1e9
                         + IDLE_S_PER_STEP * config.steps * config.directions)
        # the cold call and the warm-up call, then the timed ones
        per_round += PROCESS_S + 2 * call + plan.timing.budget_s(call)
    runnable = sum(1 for name in names if skip_reason(name, config, plan) is None)
    return runnable * per_round * plan.timing.rounds, runnable * len(passes) * plan.timing.rounds


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return (f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600
            else f"{seconds // 60}:{seconds % 60:02d}")


class Progress:
    """The estimate of the time left: the expected cost still to come (config_cost; the current
    configuration's in proportion to its measuring processes still to run) times the slowdown
    measured on the finished configurations; None until one has finished."""
    QUIET_S = 30.0  # longest silence between lines

    def __init__(self, configs: List[Tuple[float, int]]):
        """`configs`: (expected cost, measuring processes) of each configuration, in run order."""
        self.configs, self.tasks = configs, sum(tasks for _, tasks in configs)
        self.config, self.done, self.done_in_config, self.in_config = 0, 0, 0, False
        self.started = self.last_line = self.config_started = time.perf_counter()
        self.measured_s, self.measured_cost = 0.0, 0.0  # over the finished configurations

    def eta_s(self) -> Optional[float]:
        if not self.measured_cost:
            return None
        left = sum(cost for cost, _ in self.configs[self.config:])
        if self.in_config:
            cost, tasks = self.configs[self.config - 1]
            left += cost * (1 - self.done_in_config / tasks) if tasks else 0.0
        return self.measured_s / self.measured_cost * left

    def eta_text(self) -> str:
        eta = self.eta_s()
        return "ETA estimating" if eta is None else f"ETA {clock(eta)}"

    def _line(self, text: str) -> None:
        print(f"[cpu]: configuration {self.config} of {len(self.configs)}{text}; elapsed "
              f"{clock(time.perf_counter() - self.started)}, {self.eta_text()}", file=sys.stderr, flush=True)
        self.last_line = time.perf_counter()

    def start_config(self, label: str) -> None:
        self.config += 1
        self.done_in_config, self.config_started, self.in_config = 0, time.perf_counter(), True
        self._line(f" ({label}) started")

    def task_done(self) -> None:
        self.done += 1
        self.done_in_config += 1
        if time.perf_counter() - self.last_line >= self.QUIET_S:
            self._line(f", measuring process {self.done} of {self.tasks} done")

    def end_config(self) -> None:
        self.measured_s += time.perf_counter() - self.config_started
        self.measured_cost += self.configs[self.config - 1][0]
        self.in_config = False
        self._line(" done")


def run_config(planned: Planned, plan: Plan, threads: int, capability: str, processes: FreshProcesses,
               progress: Progress, seed: int = 0) -> List[dict]:
    """Every model and pass wanted on one config, `rounds` times interleaved (A B C, A B C, ...), each
    time in a fresh process; records carry the ratios and the load measured meanwhile."""
    config, names, passes = planned
    reasons = {name: skip_reason(name, config, plan) for name in names}
    results: Dict[Tuple[str, str], List[dict]] = {(name, p): [] for name in names for p in passes}
    meter = LoadMeter(threads)
    timeout_s = max(1800.0, 60 * plan.timing.max_run_time)  # longer is stuck: timed calls stop at max_run_time
    for _ in range(plan.timing.rounds):
        for pass_name in passes:
            for name in names:
                earlier = results[(name, pass_name)]
                if reasons[name] is None and (not earlier or earlier[0]["status"] == "ok"):  # failed once: fails again
                    earlier.append(processes.run(Task(config, name, pass_name, threads, plan.timing, seed), timeout_s))
                    meter.add_child(earlier[-1].get("cpu_s"))
                progress.task_done()
    load = meter.stop()
    models = build_models(config, names, torch.device("cpu"), getattr(torch, config.dtype), seed)
    records = []
    for pass_name in passes:
        for name in names:
            model = models[name]
            record = {
                "mode": plan.mode, "device": "cpu", "dtype": config.dtype, "threads": threads,
                "cpu_capability": capability, "batch": config.batch, "steps": config.steps,
                "input_size": config.input_size, "hidden_size": config.hidden_size,
                "num_modules": config.num_modules, "bidirectional": config.bidirectional,
                "periods": " ".join(map(str, config.periods)), "model": name, "model_label": MODEL_LABELS[name],
                "model_hidden_size": model.hidden_size, "parameters": model.parameters, "pass": pass_name,
                "status": "ok", **dict.fromkeys(TIMING_FIELDS), "other_cores": load["other_cores"],
                "load_1min": load["load_1min"], "load_busy": load["busy"], "load_threshold": load["threshold"]}
            if reasons[name] is not None:
                record["status"] = "skipped: " + reasons[name]
            else:
                record.update(combine(results[(name, pass_name)]))
                if pass_name == "forward_backward" and record["status"] == "ok":
                    record["peak_memory_mib"] = peak_memory_mib(model, config, record["median_ms"] < 1e3, seed)
            records.append(record)
    add_ratios(records, config)
    return records


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
        "cold_ms": statistics.median(colds) * 1e3, "cold_runs_ms": " ".join(f"{c * 1e3:.3g}" for c in colds),
        "faults_per_call": statistics.median(r["warm_faults"] for r in rounds),
        "cold_faults": statistics.median(r["cold_faults"] for r in rounds),
        "cpu_capability": rounds[0]["cpu_capability"],  # as the measuring process reported it
    }


def add_ratios(records: List[dict], config: Config) -> None:
    """Speed-ups vs nn.RNN and nn.LSTM (same H, same pass), warm (medians) and cold (first calls),
    and for the CW-RNN models the theoretical work ratio and the fraction of it realised (warm
    speed-up vs nn.RNN / work ratio). A bidirectional layer doubles the work of both sides, not their ratio."""
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
        record["realised"] = record["speedup_vs_rnn"] / theory if clockwork and record["speedup_vs_rnn"] else None


def run_plan(plan: Plan, threads: int, capability: str) -> Iterator[Tuple[Config, List[dict]]]:
    """Yields (config, its records) one config at a time, so callers can save and print as they go."""
    configs = planned_configs(plan)
    processes, progress = FreshProcesses(), Progress([config_cost(planned, plan) for planned in configs])
    for planned in configs:
        progress.start_config(planned[0].label)
        records = run_config(planned, plan, threads, capability, processes, progress)
        progress.end_config()
        yield planned[0], records
