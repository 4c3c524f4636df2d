"""Progress on stderr: configuration i of n, elapsed time and an estimate of the time left.

A tqdm bar when stderr is a terminal (and tqdm is installed), otherwise a plain line as each
configuration starts and ends, and at least every 30 s in between.

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
    QUIET_S = 30.0  # longest silence between plain lines

    def __init__(self, label: str, configs: List[Tuple[float, int]]):
        """`configs`: (expected cost, measuring processes) of each configuration, in run order."""
        self.label, self.configs = label, configs
        self.tasks = sum(tasks for _, tasks in configs)
        self.config, self.done, self.done_in_config, self.in_config = 0, 0, 0, False
        self.started = time.perf_counter()
        self.measured_s, self.measured_cost = 0.0, 0.0  # over the finished configurations
        self.last_line = self.started
        self.bar = self._make_bar()

    def _make_bar(self):
        if not sys.stderr.isatty():
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return tqdm(total=self.tasks, desc=self.label, unit="process", file=sys.stderr, leave=False,
                    bar_format="{desc} {bar:20} {n_fmt}/{total_fmt} measuring processes, elapsed {elapsed}, "
                               "{postfix}")

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
        text = f"configuration {self.config} of {len(self.configs)} ({label})"
        if self.bar is not None:
            self.bar.set_description(f"{self.label}: configuration {self.config}/{len(self.configs)}")
            self.bar.set_postfix_str(self.eta_text())
        else:
            self._line(text + " started")

    def task_done(self) -> None:
        self.done += 1
        self.done_in_config += 1
        if self.bar is not None:
            self.bar.set_postfix_str(self.eta_text(), refresh=False)
            self.bar.update(1)
        elif time.perf_counter() - self.last_line >= self.QUIET_S:
            self._line(f"configuration {self.config} of {len(self.configs)}, measuring process {self.done} "
                       f"of {self.tasks} done")

    def end_config(self) -> None:
        self.measured_s += time.perf_counter() - self.config_started
        self.measured_cost += self.configs[self.config - 1][0]
        self.in_config = False
        if self.bar is not None:
            self.bar.set_postfix_str(self.eta_text())
        else:
            self._line(f"configuration {self.config} of {len(self.configs)} done")

    def write(self, text: str) -> None:
        """Print to stdout without tearing the bar."""
        if self.bar is not None:
            self.bar.clear()
            print(text, flush=True)
            self.bar.refresh()
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
