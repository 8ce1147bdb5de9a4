"""C kernels through ``mmgnn.utils.native``: built once into the cache and reused, failures
fall back with one warning, ranges cover their span; and RotatE's C kernel against float64
sums of moduli written out here (error bound, exact zeros, ties, tiles, threads)."""

from __future__ import annotations

import ctypes
import os
import warnings

import pytest
import torch

from mmgnn.nn.kge import distances as D
from mmgnn.utils import native

SOURCE = """int mmgnn_twice(int x) { return 2 * x; }\n"""


def _kernel(tmp_path) -> native.NativeKernel:
    src = tmp_path / "twice.c"
    src.write_text(SOURCE)
    return native.NativeKernel(src, "mmgnn_twice", [ctypes.c_int])


def test_kernel_is_built_once_into_the_cache(tmp_path, monkeypatch):
    if native.compiler() is None:
        pytest.skip("no C compiler on this machine; the fallback is tested below")
    monkeypatch.setenv("MMGNN_KERNEL_CACHE", str(tmp_path / "cache"))
    assert _kernel(tmp_path)(21) == 42
    built = sorted((tmp_path / "cache").iterdir())
    assert len(built) == 1 and built[0].suffix == ".so"  # no temporary file left behind
    real_run = native.subprocess.run

    def no_compile(cmd, **kwargs):
        assert "--version" in cmd, "rebuilt instead of loading the cached library"
        return real_run(cmd, **kwargs)

    monkeypatch.setattr(native.subprocess, "run", no_compile)
    second = _kernel(tmp_path)
    assert second(5) == 10 and second.flags == native.FLAG_SETS[0]
    assert sorted((tmp_path / "cache").iterdir()) == built


def test_failure_warns_once_and_returns_none(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "missing-cc"))
    monkeypatch.setenv("MMGNN_KERNEL_CACHE", str(tmp_path / "cache"))
    kernel = _kernel(tmp_path)
    with pytest.warns(RuntimeWarning, match="could not build the C kernel twice.c"):
        assert kernel(1) is None
    assert kernel.failed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernel(1) is None


def test_broken_source_reports_the_compiler_message(tmp_path, monkeypatch):
    if native.compiler() is None:
        pytest.skip("no C compiler on this machine")
    monkeypatch.setenv("MMGNN_KERNEL_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "broken.c"
    src.write_text("int mmgnn_broken( {\n")
    with pytest.warns(RuntimeWarning, match="broken.c.*error"):
        assert native.NativeKernel(src, "mmgnn_broken", [])() is None


def test_openmp_kernel_shares_torchs_openmp_runtime(built):
    # One libgomp in the process: the kernel's threads are torch's, never a second spinning pool.
    maps = open("/proc/self/maps").read() if os.path.exists("/proc/self/maps") else ""
    if "-fopenmp" not in (built.flags or ()) or not maps:
        pytest.skip("kernel built without OpenMP, or no /proc here")
    # The kernel needs the soname libgomp.so.1; other wheels' vendored copies (scikit-learn's
    # libgomp-<hash>.so) have sonames of their own and do not matter here.
    gomp = {line.split()[-1] for line in maps.splitlines()
            if line.split()[-1].endswith("/libgomp.so.1")}
    torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    assert len(gomp) == 1 and next(iter(gomp)).startswith(torch_lib), gomp


# --------------------------------------------------------------- RotatE's C kernel
def _moduli64(q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """sum_k |q_k - c_k| over complex coordinates [re | im], in float64, by loops over k."""
    d = q.size(1) // 2
    q, c = q.double(), c.double()
    out = torch.zeros(len(q), len(c), dtype=torch.float64)
    for k in range(d):
        re = q[:, k, None] - c[None, :, k]
        im = q[:, d + k, None] - c[None, :, d + k]
        out += torch.sqrt(re * re + im * im)
    return out


@pytest.fixture
def built():
    if not D.compiled_available("complex_modulus") or D.COMPLEX_MODULUS.load() is None:
        pytest.skip("no C compiler here; complex_distance uses the eager formula (tested in "
                    "tests/nn/kge/test_distances.py)")
    return D.COMPLEX_MODULUS


@pytest.mark.parametrize("b,n,d", [(1, 1, 1), (3, 63, 5), (4, 64, 7), (5, 65, 16),
                                   (9, 200, 125)])
def test_complex_kernel_within_its_error_bound(built, b, n, d):
    g = torch.Generator().manual_seed(b * n + d)
    q, c = torch.randn(b, 2 * d, generator=g), torch.randn(n, 2 * d, generator=g)
    c[n // 2] = q[b // 2]  # a zero distance
    c[-1] = c[0]  # two equal candidates: equal scores (a tie stays a tie)
    out = D.complex_distance(q, c, kernel="compiled", negate_from=6.0)
    expected = 6.0 - _moduli64(q, c)
    # ~2 ulp per modulus plus float32 summation: 4 * d * eps relative to the sum of moduli
    bound = 4 * d * torch.finfo(torch.float32).eps * _moduli64(q, c) + 1e-6
    assert ((out.double() - expected).abs() <= bound).all()
    assert out[b // 2, n // 2] == 6.0
    assert torch.equal(out[:, 0], out[:, -1])


def test_complex_kernel_is_deterministic_across_threads_batches_and_blocks(built):
    # The same inputs give the same bits whatever the threads, the query batch or the
    # candidate slice (one accumulator per candidate, summed over k in order).
    g = torch.Generator().manual_seed(0)
    q, c = torch.randn(7, 40, generator=g), torch.randn(301, 40, generator=g)
    one = D.complex_distance(q, c, kernel="compiled")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = D.complex_distance(q, c, kernel="compiled")
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    # a query's row does not depend on the batch it came in
    assert torch.equal(D.complex_distance(q[3:4], c, kernel="compiled"), one[3:4])
    assert torch.equal(D.complex_distance(q, c[100:], kernel="compiled"), one[:, 100:])


def test_complex_kernel_leaves_float64_and_gradients_to_autograd(built):
    g = torch.Generator().manual_seed(0)
    q, c = torch.randn(3, 8, generator=g, dtype=torch.float64), torch.randn(5, 8, generator=g)
    out = D.complex_distance(q, c.double(), kernel="compiled")
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, _moduli64(q, c))
    c.requires_grad_()
    out = D.complex_distance(q.float(), c, kernel="compiled")
    assert out.requires_grad
