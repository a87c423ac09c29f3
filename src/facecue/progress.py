"""Progress reports of long work: tqdm bars on a terminal, plain lines in a log.

Every stage that can take more than a few seconds reports through :func:`progress_bar`. When
stderr is a terminal it is an ordinary tqdm bar. When stderr is a file or a pipe (a log, CI, a
server), redrawing a bar writes a carriage-return-separated line per update into the log, so the
bar instead prints one plain line at most every :data:`PLAIN_INTERVAL_S` seconds, and its final
state once. Either way it is a ``tqdm`` instance, so Gradio's ``track_tqdm`` still follows it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from typing import Any

PLAIN_INTERVAL_S = 5.0  # seconds between two plain progress lines when stderr is not a terminal


class _PlainLines:
    """A stream for tqdm that turns each redraw into one plain line (no ``\\r``, no cursor moves)."""

    def __init__(self, stream: Any):
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\x1b[A", "").replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs):
    """A tqdm progress bar over ``iterable`` (or a manual one with ``total=``), or ``iterable``
    itself when not ``enabled``.

    Keyword arguments are tqdm's (``total``, ``desc``, ``unit``, ``leave``, ``initial``...). When
    stderr is not a terminal the bar prints plain lines at most every :data:`PLAIN_INTERVAL_S`
    seconds (and its final state when ``leave`` is true, tqdm's default); there ``set_postfix``
    and ``set_description`` change what the next line shows without printing one themselves
    (tqdm's default redraws the bar on each call, a log line per call).
    """
    if not enabled:
        if iterable is None:
            return _NoBar()
        return iterable
    from tqdm import tqdm

    if stderr_is_terminal():
        return tqdm(iterable, **kwargs)
    kwargs.setdefault("file", _PlainLines(sys.stderr))
    kwargs.setdefault("mininterval", PLAIN_INTERVAL_S)
    kwargs.setdefault("maxinterval", max(PLAIN_INTERVAL_S, kwargs["mininterval"]))
    kwargs.setdefault("ncols", 80)
    kwargs.pop("dynamic_ncols", None)
    return _plain_bar_class()(iterable, **kwargs)


@functools.cache
def _plain_bar_class() -> type:
    """tqdm whose postfix/description setters never force a redraw: in a log every redraw is a
    line, so only the throttled updates (and the final state) print."""
    from tqdm import tqdm

    class PlainBar(tqdm):
        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
            super().set_postfix(ordered_dict, refresh=False, **kwargs)

        def set_postfix_str(self, s="", refresh=True):
            super().set_postfix_str(s, refresh=False)

        def set_description(self, desc=None, refresh=True):
            super().set_description(desc, refresh=False)

        def set_description_str(self, desc=None, refresh=True):
            super().set_description_str(desc, refresh=False)

    return PlainBar


class _NoBar:
    """The manual-bar interface (``update``, ``set_postfix``, ``close``, context manager) doing nothing."""

    n = 0

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def set_description(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


__all__ = ["PLAIN_INTERVAL_S", "progress_bar", "stderr_is_terminal"]
