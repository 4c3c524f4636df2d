"""The machine a result is measured on: cores, CPU model and clock, the instruction set the kernels
run with (and how to limit it), the FMA peak, the metadata of every result file, and how busy the
machine is: the CPU time other processes used while a configuration was measured, in cores."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

import cwrnn_ext

from .configs import CONFIG_FIELDS

# --capability NAME: the environment every process of the run gets, so that torch's own kernels
# (ATEN_CPU_CAPABILITY), MKL and oneDNN all stop at the same instruction set.
CAPABILITY_ENV: Dict[str, Dict[str, str]] = {
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
               "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                "ONEDNN_MAX_CPU_ISA": "SSE41"},
}
FP32_LANES = {"AVX512": 16, "AVX2": 8, "DEFAULT": 4}  # by torch.backends.cpu.get_cpu_capability()
FMA_UNITS = 2  # per core: what current x86 server cores have; the peak is an estimate


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_average() -> float:
    return os.getloadavg()[0]


def threshold(threads: int, cores: Optional[int] = None) -> float:
    """Other work (in cores) above which it competes with this run's threads: a run on `threads` of
    `cores` cores is disturbed once other work needs more than the cores it leaves free."""
    return (available_cores() if cores is None else cores) - threads + 0.5


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("s" if count != 1 else "")


def requested_capability() -> Optional[str]:
    """The --capability name whose environment this process runs with, or None."""
    return next((name for name, env in CAPABILITY_ENV.items()
                 if all(os.environ.get(key) == value for key, value in env.items())), None)


def result_stem(mode: str, section: str = "") -> str:
    """A result file's name without suffix: section, mode, the capability if one was requested,
    device; e.g. quick_cpu, streaming_quick_avx2_cpu."""
    return "_".join(part for part in (section, mode, requested_capability(), "cpu") if part)


def cpu_capabilities() -> Dict[str, Optional[str]]:
    """The instruction set torch's CPU kernels use here and the one cwrnn_ext's own kernels use
    (None where this cwrnn_ext does not say), and which of them the CW-RNN kernel runs with."""
    torch_capability = torch.backends.cpu.get_cpu_capability()
    library = str(cwrnn_ext.cpu_capability()).upper() if hasattr(cwrnn_ext, "cpu_capability") else None
    return {"torch": torch_capability, "cwrnn_ext": library, "kernel": library or torch_capability}


def _cpuinfo(field: str) -> List[str]:
    try:
        return [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith(field)]
    except OSError:
        return []


def cpu_model() -> str:
    return next(iter(_cpuinfo("model name")), platform.processor() or platform.machine())


def cpu_mhz() -> Optional[float]:
    """The highest 'cpu MHz' in /proc/cpuinfo: the clock the kernel sees when it is read (in a VM
    often the nominal one), so an estimate."""
    return max(map(float, _cpuinfo("cpu MHz")), default=None)


def fma_peak_per_s(threads: int, capability: Optional[str], mhz: Optional[float]) -> Optional[float]:
    """Fused multiply-adds per second at best: cores used x clock x FMA units x float32 lanes of the
    capability; None where the clock or the lane count is unknown."""
    lanes = FP32_LANES.get(capability or "")
    if lanes is None or not mhz:
        return None
    return min(threads, available_cores()) * mhz * 1e6 * FMA_UNITS * lanes


def git_commit() -> Optional[str]:
    """HEAD of the checkout the benchmark ran from, '+dirty' if it had local changes."""
    try:
        head, status = (subprocess.run(["git", *command], cwd=Path(__file__).resolve().parent.parent,
                                       capture_output=True, text=True, timeout=10)
                        for command in (["rev-parse", "HEAD"], ["status", "--porcelain"]))
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "") if head.returncode == 0 else None


def run_metadata(program: str, argv: Optional[List[str]], threads) -> dict:
    """What every result file records about its run: date, machine, versions, command, threads,
    CPU capability (and the environment that limited it, if any) and the clock estimate."""
    mhz = cpu_mhz()
    return {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([f"python -m {program}"] + list(sys.argv[1:] if argv is None else argv)),
        "cpu_model": cpu_model(), "cores": available_cores(), "threads": threads,
        "cpu_capability": cpu_capabilities(),
        "capability_env": {key: os.environ[key] for env in CAPABILITY_ENV.values() for key in env
                           if key in os.environ},
        "cpu_mhz": mhz, "cpu_mhz_note": "from /proc/cpuinfo when the run started: an estimate" if mhz else None,
        "torch": torch.__version__, "cwrnn_ext": cwrnn_ext.__version__,
        "cuda_kernels_available": cwrnn_ext.cuda_kernels_available(),
        "python": platform.python_version(), "platform": platform.platform(), "git_commit": git_commit(),
    }


def pre_run_warning(threads: int) -> Optional[str]:
    load, cores = load_average(), available_cores()
    if load <= threshold(threads, cores):
        return None
    return (f"warning: the 1-minute load average is {load:.1f} on {cores} cores before this run, above "
            f"{threshold(threads, cores):.1f} (cores - threads + 0.5 with {plural(threads, 'thread')}): timings and "
            f"speed-ups over nn.RNN / nn.LSTM (which suffer more) are unreliable; use an idle machine.")


def _busy_seconds() -> Optional[float]:
    """Busy CPU seconds since boot, summed over the cores this process may run on (None off Linux)."""
    try:
        lines, cpus, busy = Path("/proc/stat").read_text().splitlines(), {f"cpu{i}" for i in os.sched_getaffinity(0)}, 0
    except (OSError, AttributeError):
        return None
    for fields in map(str.split, lines):
        if fields and fields[0] in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
            busy += user + nice + system + irq + softirq + steal
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and its reaped children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class LoadMeter:
    """Other processes' CPU use over an interval. Our measuring processes are not our children
    (forked by a server), so their CPU time must be added with `add_child`."""

    def __init__(self, threads: int):
        self.threads, self.child_seconds = threads, 0.0
        self.wall, self.busy, self.own = time.perf_counter(), _busy_seconds(), _own_seconds()

    def add_child(self, seconds: Optional[float]) -> None:
        self.child_seconds += seconds or 0.0

    def stop(self) -> dict:
        wall = time.perf_counter() - self.wall
        own = _own_seconds() - self.own + self.child_seconds
        busy = _busy_seconds()
        other = None if busy is None else round(max(0.0, (busy - self.busy - own) / wall), 2)
        limit = threshold(self.threads)
        return {"other_cores": other, "load_1min": round(load_average(), 2), "threshold": limit,
                "busy": other is not None and other > limit}


def busy_note(loads: List[dict], threads: int) -> Optional[str]:
    """What disturbed the run, for titles and verdicts, or None."""
    busy = [entry for entry in loads if entry["busy"]]
    if not busy:
        return None
    return (f"other processes used up to {max(entry['other_cores'] for entry in busy):.1f} of "
            f"{available_cores()} cores (threshold {busy[0]['threshold']:.1f} with {plural(threads, 'thread')}) "
            f"during {len(busy)} of {len(loads)} configuration(s)")


def config_loads(records: List[dict]) -> List[dict]:
    """The load measured during each configuration (all its records carry the same)."""
    return list({tuple(r.get(name) for name in CONFIG_FIELDS): {"other_cores": r["other_cores"],
                                                                "load_1min": r["load_1min"],
                                        "busy": r["load_busy"], "threshold": r["load_threshold"]}
                 for r in records}.values())
