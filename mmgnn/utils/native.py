"""C kernels built with the system's C compiler on first use and called through :mod:`ctypes`.

:func:`torch.compile` (:mod:`mmgnn.utils.compile`) is the way mmgnn fuses its hot loops. A
loop bound by an instruction that TorchInductor never emits gets a small C file instead:
RotatE's 1-to-all distance is bound by its square roots, which Inductor computes exactly
(``vsqrtps``); GCC's ``-mrecip`` turns them into the reciprocal-square-root estimate and one
Newton step, 1.3x faster (``benchmarks/decoder_kernels.py``). The file is compiled once per
machine and compiler into a cache folder (``$MMGNN_KERNEL_CACHE``, else
``$XDG_CACHE_HOME/mmgnn/kernels``, else ``~/.cache/mmgnn/kernels``), keyed by a hash of the
source, the flags, the compiler's version and the CPU, and written atomically, so concurrent
processes (DDP ranks, pytest workers) never load a half-written library. Any failure (no
compiler, an unknown flag, a read-only cache) issues one warning and the caller falls back to its
PyTorch formula for the rest of the process, as :class:`~mmgnn.utils.compile.LazyCompiled` does.

A kernel parallelises itself with OpenMP (``-fopenmp``; see :data:`FLAG_SETS`); its caller
passes :func:`torch.get_num_threads`. :mod:`ctypes` releases the GIL during the call.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

#: Flag sets tried in order: the first is the kernels' design point (x86-64, GCC), the second
#: any GCC-compatible compiler with OpenMP, the last any C compiler (serial loops). With
#: ``-fopenmp`` the library depends on ``libgomp.so.1``, which the dynamic loader resolves to the
#: copy torch already loaded: one OpenMP thread pool for torch and the kernels (two pools would
#: spin against each other on the same cores; measured 1.4x slower).
FLAG_SETS = (
    ("-O3", "-march=native", "-fno-math-errno", "-funsafe-math-optimizations",
     "-ffinite-math-only", "-fno-trapping-math", "-mrecip=sqrt", "-fopenmp"),
    ("-O3", "-fno-math-errno", "-fopenmp"),
    ("-O3", "-fno-math-errno"),
)


def cache_dir() -> Path:
    """The folder of compiled kernels (see the module docstring)."""
    if os.environ.get("MMGNN_KERNEL_CACHE"):
        return Path(os.environ["MMGNN_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mmgnn" / "kernels"


def compiler() -> str | None:
    """The C compiler: ``$CC``, else ``cc``, ``gcc`` or ``clang`` on the ``PATH``."""
    if os.environ.get("CC"):
        return os.environ["CC"]
    return next((found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))),
                None)


@functools.cache
def _version(cc: str) -> str:
    return subprocess.run([cc, "--version"], capture_output=True, text=True,
                          timeout=60).stdout


@functools.cache
def _machine() -> str:
    """What ``-march=native`` compiles for: the architecture, torch's CPU capability and the
    CPU model, so that a cache folder shared by different machines never hands one of them a
    library with instructions it lacks."""
    cpu: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key = line.split(":")[0].strip()
            if key in ("model name", "flags"):
                cpu.setdefault(key, line)
    return " ".join([platform.machine(), torch.backends.cpu.get_cpu_capability(),
                     *cpu.values()])


def build(source: Path, flags: Sequence[str], cc: str) -> Path:
    """The shared library of ``source`` compiled with ``flags`` (from the cache when built
    before); :class:`RuntimeError` with the compiler's message when it fails."""
    text = source.read_bytes()
    key = hashlib.sha256(b"\0".join([text, " ".join(flags).encode(), _version(cc).encode(),
                                     _machine().encode()])).hexdigest()[:20]
    out = cache_dir() / f"{source.stem}-{key}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *flags, "-shared", "-fPIC", str(source), "-o", tmp],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode:
            raise RuntimeError(f"{cc} {' '.join(flags)} {source.name}: "
                               f"{proc.stderr.strip()[-500:]}")
        os.replace(tmp, out)  # atomic: another process sees the old name or the whole file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


class NativeKernel:
    """The C function ``symbol`` of ``source``, compiled and loaded on first use.

    Calling it returns the function's result, or :obj:`None` once building or loading has
    failed (the first failure warns), so the caller can use its PyTorch formula instead.

    Args:
        source (Path): The C file.
        symbol (str): The function's name.
        argtypes (Sequence): Its :mod:`ctypes` argument types.
        restype: Its :mod:`ctypes` result type. (default: :obj:`ctypes.c_int`)
    """

    def __init__(self, source: Path, symbol: str, argtypes: Sequence[Any],
                 restype: Any = ctypes.c_int) -> None:
        self.source, self.symbol = Path(source), symbol
        self.argtypes, self.restype = list(argtypes), restype
        self.function: Callable[..., Any] | None = None
        self.flags: tuple[str, ...] | None = None  # the flag set it was built with
        self.failed = False

    def load(self) -> Callable[..., Any] | None:
        """The loaded function (building it if needed), or :obj:`None` after a failure."""
        if self.function is not None or self.failed:
            return self.function
        errors = []
        cc = compiler()
        for flags in FLAG_SETS if cc else ():
            try:
                lib = ctypes.CDLL(str(build(self.source, flags, cc)))
            except (OSError, RuntimeError, subprocess.SubprocessError) as err:
                errors.append(str(err))
                continue
            fn = getattr(lib, self.symbol)
            fn.argtypes, fn.restype = self.argtypes, self.restype
            self.function, self.flags = fn, flags
            return fn
        self.failed = True
        reason = "; ".join(errors) if cc else "no C compiler found (set $CC)"
        warnings.warn(f"could not build the C kernel {self.source.name} ({reason}); using the "
                      f"PyTorch formula instead", RuntimeWarning, stacklevel=3)
        return None

    def __call__(self, *args: Any) -> Any:
        fn = self.load()
        return None if fn is None else fn(*args)


__all__ = ["FLAG_SETS", "cache_dir", "compiler", "build", "NativeKernel"]
