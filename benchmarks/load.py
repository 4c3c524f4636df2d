"""How busy the machine is: other processes competing for the cores a run uses.

Before the run: the 1-minute load average (no work of ours in it yet). During the run, per
configuration: the CPU time the other processes used while it was measured, in cores: every core's
busy time in /proc/stat (steal included: a VM's neighbours) minus the time of this benchmark's own
processes. The load average lags by a minute and would count our own threads; this does neither.

A run on `threads` of `cores` cores is disturbed once other work needs more than the cores it leaves
free, so the threshold is cores - threads + 0.5 (for 2 threads on 2 cores: 0.5).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import List, Optional

from .configs import record_config_key


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> Optional[float]:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return None


def threshold(threads: int, cores: Optional[int] = None) -> float:
    """Other work (in cores) above which it competes with this run's threads."""
    return (available_cores() if cores is None else cores) - threads + 0.5


def _threads(threads: int) -> str:
    return f"{threads} thread" + ("s" if threads != 1 else "")


def pre_run_warning(threads: int) -> Optional[str]:
    load, cores = load_average(), available_cores()
    if load is None or load <= threshold(threads, cores):
        return None
    return (f"warning: the 1-minute load average is {load:.1f} on {cores} cores before this run, above "
            f"{threshold(threads, cores):.1f} (cores - threads + 0.5 with {_threads(threads)}): other "
            f"processes compete for the cores this run uses, so timings (and speed-ups over nn.RNN / "
            f"nn.LSTM, which suffer more) are unreliable. Use an idle machine for real numbers.")


def _busy_seconds() -> Optional[float]:
    """Busy CPU seconds since boot, summed over the cores this process may run on (Linux)."""
    try:
        lines = open("/proc/stat").read().splitlines()
        cpus = {f"cpu{i}" for i in os.sched_getaffinity(0)}
    except (OSError, AttributeError):
        return None
    busy = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
            busy += user + nice + system + irq + softirq + steal
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and its reaped children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class LoadMeter:
    """Measures other processes' CPU use over an interval. `child_seconds` must be told the CPU time
    of our measuring processes that are not our children (they report it themselves)."""
    threads: int
    started_wall: float = 0.0
    started_busy: Optional[float] = None
    started_own: float = 0.0
    child_seconds: float = 0.0

    def start(self) -> None:
        self.started_wall, self.started_busy = time.perf_counter(), _busy_seconds()
        self.started_own, self.child_seconds = _own_seconds(), 0.0

    def add_child(self, seconds: Optional[float]) -> None:
        self.child_seconds += seconds or 0.0

    def stop(self) -> dict:
        """{'other_cores': mean cores used by other processes (None where unknown), 'load_1min',
        'threshold', 'busy': whether other work exceeded the threshold}."""
        wall, busy = time.perf_counter() - self.started_wall, _busy_seconds()
        other = None
        if busy is not None and self.started_busy is not None and wall > 0:
            own = _own_seconds() - self.started_own + self.child_seconds
            other = max(0.0, (busy - self.started_busy - own) / wall)
        load = load_average()
        limit = threshold(self.threads)
        if other is not None:
            competing = other
        else:  # no /proc/stat: the load average, less our own threads (a rough estimate)
            competing = None if load is None else max(0.0, load - self.threads)
        return {"other_cores": None if other is None else round(other, 2),
                "load_1min": None if load is None else round(load, 2), "threshold": limit,
                "busy": competing is not None and competing > limit}


def busy_note(loads: List[dict], threads: int) -> Optional[str]:
    """What disturbed the run, for titles and verdicts ("other processes used up to ..."), or None."""
    busy = [entry for entry in loads if entry and entry["busy"]]
    if not busy:
        return None
    cores = available_cores()
    others = [entry["other_cores"] for entry in busy if entry["other_cores"] is not None]
    if others:
        amount = f"other processes used up to {max(others):.1f} of {cores} cores"
    else:
        amount = f"load average up to {max(entry['load_1min'] for entry in busy):.1f}"
    return (f"{amount} (threshold {busy[0]['threshold']:.1f} with {_threads(threads)}) "
            f"during {len(busy)} of {len(loads)} configuration(s)")


def config_loads(records: List[dict]) -> List[dict]:
    """The load measured during each configuration (all its records carry the same)."""
    loads = {}
    for r in records:
        key = record_config_key(r)
        loads[key] = {"other_cores": r["other_cores"], "load_1min": r["load_1min"], "busy": r["load_busy"],
                      "threshold": r["load_threshold"]}
    return list(loads.values())
