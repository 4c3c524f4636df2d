"""Progress on stderr: configuration i of n, elapsed time and an estimate of the time left.

A tqdm bar when stderr is a terminal (and tqdm is installed), otherwise a plain line as each
configuration starts and ends, and at least every 30 s in between. The estimate counts measuring processes still to run at the mean
rate so far (configurations differ in cost, so it is rough until a few have run).
"""
from __future__ import annotations

import sys
import time
from typing import Optional


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    QUIET_S = 30.0  # longest silence between plain lines

    def __init__(self, label: str, configs: int, tasks: int):
        self.label, self.configs, self.tasks = label, configs, tasks
        self.config, self.done, self.started = 0, 0, time.perf_counter()
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
                    bar_format="{desc} {bar:20} {n_fmt}/{total_fmt} measuring processes, "
                               "elapsed {elapsed}, ETA {remaining}")

    def _eta(self) -> Optional[float]:
        if not self.done:
            return None
        return (time.perf_counter() - self.started) / self.done * (self.tasks - self.done)

    def _line(self, text: str) -> None:
        eta = self._eta()
        elapsed = _clock(time.perf_counter() - self.started)
        print(f"{self.label}: {text}; elapsed {elapsed}, ETA {'?' if eta is None else _clock(eta)}",
              file=sys.stderr, flush=True)
        self.last_line = time.perf_counter()

    def start_config(self, label: str) -> None:
        self.config += 1
        text = f"configuration {self.config} of {self.configs} ({label})"
        if self.bar is not None:
            self.bar.set_description(f"{self.label}: configuration {self.config}/{self.configs}")
        else:
            self._line(text + " started")

    def task_done(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif time.perf_counter() - self.last_line >= self.QUIET_S:
            self._line(f"configuration {self.config} of {self.configs}, measuring process {self.done} "
                       f"of {self.tasks} done")

    def end_config(self) -> None:
        if self.bar is None:
            self._line(f"configuration {self.config} of {self.configs} done")

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
