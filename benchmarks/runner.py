"""Runs a plan on one device: every config, every model, both passes; returns flat records."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch

from .configs import PASSES, Config, Plan, with_dtype
from .memory import peak_memory_bytes
from .models import CLOCKWORK_MODELS, MODEL_LABELS, MODEL_NAMES, build_models
from .timing import measure_interleaved, pass_fn, warm_up
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
    seed: int = 0


def planned_configs(plan: Plan, dtype: str, models: Tuple[str, ...]) -> List[Tuple[Config, Tuple[str, ...]]]:
    """Unique configs in run order (targets first), each with the union of models wanted there."""
    wanted: Dict[Config, set] = {}
    for target in plan.targets:
        wanted.setdefault(with_dtype(target.config, dtype), set()).update(models)
    for sweep in plan.sweeps:
        for config in sweep.configs:
            wanted.setdefault(with_dtype(config, dtype), set()).update(sweep.models or models)
    return [(config, tuple(m for m in MODEL_NAMES if m in names and m in models))
            for config, names in wanted.items()]


def skip_reason(name: str, config: Config, settings: Settings) -> Optional[str]:
    """Why a model is not run at this size, or None."""
    if name == "cwrnn_reference" and settings.reference_limit is not None:
        dense = srn_macs(config.input_size, config.hidden_size, config.steps, config.batch)
        if dense > settings.reference_limit:
            return (f"pure-PyTorch reference skipped in {settings.mode} mode at this size "
                    f"({dense:.2g} dense MACs > {settings.reference_limit:.2g}); run --full")
    return None


def run_config(config: Config, names: Tuple[str, ...], settings: Settings) -> List[dict]:
    """Time (and measure memory of) every model on one config; records carry the ratios."""
    device, dtype = settings.device, getattr(torch, config.dtype)
    torch.manual_seed(settings.seed)
    input = torch.randn(config.steps, config.batch, config.input_size, device=device, dtype=dtype)
    models = build_models(config, names, device, dtype, settings.seed)
    reasons = {name: skip_reason(name, config, settings) for name in names}
    records = []
    for pass_name in PASSES:
        fns = {name: pass_fn(pass_name, models[name], input) for name in names if reasons[name] is None}
        one_call, failures = warm_up_all(fns, device)
        timings = measure_interleaved({name: fns[name] for name in one_call}, one_call, device,
                                      settings.threads, settings.min_run_time, settings.min_repeats,
                                      settings.rounds, settings.max_run_time)
        for name in names:
            record = base_record(config, settings, models[name], pass_name)
            if reasons[name] is not None:
                record["status"] = "skipped: " + reasons[name]
            elif name in failures:
                record["status"] = failures[name]
            else:
                timing = timings[name]
                record.update(median_ms=timing.median_s * 1e3, iqr_ms=timing.iqr_s * 1e3,
                              min_ms=timing.min_s * 1e3, samples=timing.samples)
                if settings.memory and pass_name == "forward_backward":
                    peak = peak_memory_bytes(fns[name], device)
                    record["peak_memory_mib"] = None if peak is None else peak / 2 ** 20
            records.append(record)
    del models, input, fns
    add_ratios(records, config)
    return records


def warm_up_all(fns: Dict[str, Callable[[], object]], device: torch.device):
    """Warm every model up; one that fails (say, a dtype a baseline lacks on this device, or out of
    memory) is reported in its records instead of ending a long sweep."""
    one_call, failures = {}, {}
    for name, fn in fns.items():
        try:
            one_call[name] = warm_up(fn, device)
        except Exception as error:  # noqa: BLE001 - recorded, never hidden
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            failures[name] = f"failed: {type(error).__name__}: {message}"[:300]
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return one_call, failures


def base_record(config: Config, settings: Settings, model, pass_name: str) -> dict:
    return {
        "mode": settings.mode, "device": settings.device.type, "dtype": config.dtype,
        "threads": settings.threads, "batch": config.batch, "steps": config.steps,
        "input_size": config.input_size, "hidden_size": config.hidden_size,
        "num_modules": config.num_modules, "periods": " ".join(map(str, config.periods)),
        "model": model.name, "model_label": MODEL_LABELS[model.name],
        "model_hidden_size": model.hidden_size, "parameters": model.parameters,
        "pass": pass_name, "status": "ok", "median_ms": None, "iqr_ms": None,
        "min_ms": None, "samples": None,
        "peak_memory_mib": None,
    }


def add_ratios(records: List[dict], config: Config) -> None:
    """Speed-ups vs nn.RNN and nn.LSTM (same H, same pass), and for the CW-RNN models the
    theoretical work ratio and the fraction of it realised (speed-up vs nn.RNN / work ratio)."""
    theory = work_ratio(config.periods, config.module_sizes, config.input_size, config.steps)
    times = {(r["model"], r["pass"]): r["median_ms"] for r in records}
    for record in records:
        own = record["median_ms"]
        for baseline in ("rnn", "lstm"):
            other = times.get((baseline, record["pass"]))
            record[f"speedup_vs_{baseline}"] = other / own if own and other else None
        clockwork = record["model"] in CLOCKWORK_MODELS
        record["work_ratio"] = theory if clockwork else None
        speedup = record["speedup_vs_rnn"]
        record["realised"] = speedup / theory if clockwork and speedup else None


def run_plan(plan: Plan, dtype: str, settings: Settings) -> Iterator[Tuple[Config, List[dict]]]:
    """Yields (config, its records) one config at a time, so callers can save as they go."""
    for config, names in planned_configs(plan, dtype, settings.models):
        yield config, run_config(config, names, settings)
