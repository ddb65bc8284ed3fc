"""Progress of long work, readable on a terminal and in a log file.

On a terminal, :func:`progress` is a tqdm bar. Written to a file or a CI log, a bar would fill
it with thousands of carriage-return frames; there it prints one plain line every
``NEUROLANG_PROGRESS_SECONDS`` seconds (default 30) and one when the work ends, e.g.
``stage 2: distill: 120/480 batch (25%), 1.9 batch/s, loss=0.41``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

ENV_SECONDS = "NEUROLANG_PROGRESS_SECONDS"


def _interactive(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """The subset of tqdm's interface neurolang uses, printing plain lines."""

    def __init__(self, iterable=None, total: int | None = None, desc: str = "",
                 unit: str = "it", initial: int = 0, disable: bool = False,
                 interval: float | None = None, stream=None, **_: Any):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self._start = initial
        self.disable = disable
        self.interval = float(os.environ.get(ENV_SECONDS, 30)) if interval is None else interval
        self.stream = stream or sys.stderr
        self.postfix = ""
        self._t0 = self._last = time.monotonic()
        self._closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __len__(self):
        return self.total or 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _line(self) -> str:
        elapsed = time.monotonic() - self._t0
        rate = (self.n - self._start) / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        tail = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {done} {self.unit}{share}, {rate:.2f} {self.unit}/s{tail}"

    def _emit(self) -> None:
        if not self.disable:
            print(self._line(), file=self.stream, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._emit()

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs: Any) -> None:
        values = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def write(self, text: str) -> None:
        if not self.disable:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n != self._start:
                self._emit()


def quiet_library_bars(stream=None) -> None:
    """Outside a terminal, switch off the bars of the libraries underneath (transformers,
    datasets, the Hub client: their frames would fill a log file); neurolang's own progress
    goes on as lines."""
    if not _interactive(stream or sys.stderr):
        for variable in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS",
                         "HF_DATASETS_DISABLE_PROGRESS_BARS"):
            os.environ.setdefault(variable, "1")


def progress(iterable=None, **kwargs: Any):
    """A tqdm bar on a terminal, :class:`LineProgress` anywhere else (same arguments)."""
    stream = kwargs.get("file") or sys.stderr
    if _interactive(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, **kwargs)
    kwargs.pop("file", None)
    kwargs.pop("leave", None)
    kwargs.pop("dynamic_ncols", None)
    return LineProgress(iterable, stream=stream, **kwargs)
