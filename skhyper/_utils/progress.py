"""A minimal text progress bar on stderr, shown only when ``verbose > 0``."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Progress over ``total`` steps, redrawn in place at most ~10 times a second.

    Parameters
    ----------
    total : int
        Number of steps.
    desc : str
        Label printed before the bar.
    verbose : int
        Nothing is printed when ``verbose <= 0``.
    stream : file-like, default=sys.stderr
    """

    def __init__(
        self, total: int, desc: str, verbose: int, stream: TextIO | None = None
    ) -> None:
        self.total = max(int(total), 1)
        self.desc = desc
        self.enabled = verbose > 0
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self.postfix = ""
        self._start = time.perf_counter()
        self._last = 0.0

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.count += n
        if postfix is not None:
            self.postfix = postfix
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last >= 0.1 or self.count >= self.total:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = min(self.count / self.total, 1.0)
        width = 24
        filled = int(round(frac * width))
        bar = "#" * filled + "-" * (width - filled)
        elapsed = now - self._start
        self.stream.write(
            f"\r{self.desc}: [{bar}] {self.count}/{self.total} "
            f"{elapsed:6.1f}s {self.postfix}"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
