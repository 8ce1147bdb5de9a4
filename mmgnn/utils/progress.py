"""Progress bars that stay readable both in a terminal and in a log file."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(iterable=None, **kwargs) -> tqdm:
    """A :class:`tqdm` bar; redrawn at most every 30 s when stderr is not a terminal, so that
    logs of long runs (CI, ``nohup``) do not fill with carriage-return frames."""
    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", 30.0)
    return tqdm(iterable, **kwargs)
