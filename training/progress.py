"""Progress for a training run: a bar per stage while it runs, then one lasting line with its duration.

Also when not on a terminal, where the bar stays hidden: a long run would otherwise look stuck.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.progress import Progress

from setlist import jobmetrics


class Reporter:
    """``say`` prints a line; ``note`` also keeps it among the run's choices (logged to MLflow);
    ``task`` starts a stage and returns the callable that advances it. Silent when ``enabled`` is false."""

    def __init__(self, enabled: bool, choices: list[str]) -> None:
        self._bar = Progress(transient=True) if enabled else None
        self.choices = choices

    def __enter__(self) -> Reporter:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.__exit__(kind, exc, tb)

    def say(self, line: str) -> None:
        if self._bar is not None:
            self._bar.console.print(f"  {line}")

    def note(self, line: str) -> None:
        self.choices.append(line)
        self.say(line)

    def task(self, label: str, total: int | None = None) -> Callable[[], None]:
        jobmetrics.current().step(label)  # a span per stage when tracing is on
        bar = self._bar
        if bar is None:
            return lambda: None
        t, started, left = bar.add_task(label, total=total), time.perf_counter(), [total or 1]

        def advance() -> None:
            bar.advance(t)
            left[0] -= 1
            if left[0] == 0:
                bar.console.print(f"  {label}: {time.perf_counter() - started:,.1f} s")

        return advance
