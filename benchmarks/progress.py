"""Progress on stderr: a line as each configuration starts and ends, and at least every 30 s in
between: configuration i of n, elapsed time and an estimate of the time left.

The estimate is "estimating" until a configuration has been measured; then it is the expected
cost still to come (runner.config_weight: seconds on an idle machine; the current configuration's
in proportion to its measuring processes still to run) times the slowdown measured so far
(measured seconds / expected seconds of the finished configurations), redone as each finishes.
"""
from __future__ import annotations

import sys
import time
from typing import List, Optional, Tuple


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    QUIET_S = 30.0  # longest silence between lines

    def __init__(self, label: str, configs: List[Tuple[float, int]]):
        """`configs`: (expected cost, measuring processes) of each configuration, in run order."""
        self.label, self.configs = label, configs
        self.tasks = sum(tasks for _, tasks in configs)
        self.config, self.done, self.done_in_config, self.in_config = 0, 0, 0, False
        self.started = self.last_line = self.config_started = time.perf_counter()
        self.measured_s, self.measured_cost = 0.0, 0.0  # over the finished configurations

    def eta_s(self) -> Optional[float]:
        """Seconds left, or None until a configuration has been measured."""
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
        elapsed = clock(time.perf_counter() - self.started)
        print(f"{self.label}: {text}; elapsed {elapsed}, {self.eta_text()}", file=sys.stderr, flush=True)
        self.last_line = time.perf_counter()

    def start_config(self, label: str) -> None:
        self.config += 1
        self.done_in_config, self.config_started, self.in_config = 0, time.perf_counter(), True
        self._line(f"configuration {self.config} of {len(self.configs)} ({label}) started")

    def task_done(self) -> None:
        self.done += 1
        self.done_in_config += 1
        if time.perf_counter() - self.last_line >= self.QUIET_S:
            self._line(f"configuration {self.config} of {len(self.configs)}, measuring process {self.done} "
                       f"of {self.tasks} done")

    def end_config(self) -> None:
        self.measured_s += time.perf_counter() - self.config_started
        self.measured_cost += self.configs[self.config - 1][0]
        self.in_config = False
        self._line(f"configuration {self.config} of {len(self.configs)} done")
