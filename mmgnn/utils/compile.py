"""``torch.compile`` with a safe fallback: the one way mmgnn's fused CPU kernels are compiled.

A few hot loops (the L1 and complex-modulus distance kernels of :mod:`mmgnn.nn.kge.distances`,
the rank counting of :mod:`mmgnn.eval.ranking`) are several times faster when TorchInductor
fuses them into one pass over memory. Compilation needs a working C++ toolchain and costs
seconds on first use, so it is lazy, and any failure means "use the eager formula": a warning
is issued once and the caller falls back for the rest of the process.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

# One kernel serves all shapes (dynamic=True), but Inductor sizes its OpenMP parallelism from the
# shapes of the first call, and its on-disk cache may hand a kernel first compiled for a tiny
# call (a unit test) to a large one: a serial loop, 2x slower on 2 cores. dynamic_threads keeps a
# parallel loop in every kernel and leaves the thread count to the OpenMP runtime.
INDUCTOR_OPTIONS = {"cpp.dynamic_threads": True}

#: The kernel choices of every fused hot loop: compile on CPU where it pays (``auto``),
#: always (``compiled``) or never (``eager``).
KERNELS = ("auto", "compiled", "eager")


def check_kernel(kernel: str) -> str:
    """``kernel`` if it is one of :data:`KERNELS`; a :class:`ValueError` naming them otherwise."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    return kernel


class LazyCompiled:
    """``fn`` compiled by :func:`torch.compile` (dynamic shapes) on its first call.

    Calling it returns ``fn``'s result, or :obj:`None` once compilation or a compiled call has
    failed (the first failure warns; later calls return :obj:`None` at once), so the caller can
    run its eager formula instead.

    Args:
        fn (Callable): A function of tensors that TorchInductor can compile.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.compiled: Callable[..., Any] | None = None
        self.failed = False

    def __call__(self, *args: Any) -> Any:
        if self.failed:
            return None
        try:
            if self.compiled is None:
                self.compiled = torch.compile(self.fn, dynamic=True, options=INDUCTOR_OPTIONS)
            return self.compiled(*args)
        except Exception as err:  # any compiler or toolchain error means "fall back"
            self.failed = True
            warnings.warn(f"torch.compile of {self.fn.__module__}.{self.fn.__name__} failed "
                          f"({type(err).__name__}: {err}); using the eager formula instead",
                          RuntimeWarning, stacklevel=3)
            return None
