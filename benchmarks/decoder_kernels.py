"""Times 1-to-all scoring of every KGE decoder on FB15k-237-sized inputs, and the alternative
kernels compared for the distances that are not a matrix product (L1, RotatE's complex modulus,
PairRE's weighted L1).

    python benchmarks/decoder_kernels.py [--queries 1024] [--entities 14541] [--dim 200]

Prints seconds per 1,000 queries (best of ``--repeats`` runs, so that a busy machine inflates
the numbers less) and, for each alternative, the ratio to the kernel the decoder uses by
default. Compilation time (first call, cached on disk afterwards) is printed separately.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from mmgnn.nn.kge import DECODERS, build_decoder
from mmgnn.nn.kge import distances as D
from mmgnn.nn.kge.base import DEFAULT_CHUNK_ELEMENTS, chunked_one_to_all


def best_time(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    """Best of ``repeats`` runs (one run only for alternatives that take seconds)."""
    out, best = None, float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
        if best > 2.0:
            break
    return best, out


def compile_time(fn: Callable[[], torch.Tensor]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# offset 0, sign 1: the compiled kernels' epilogue returning the distances themselves.
_PLAIN = (torch.tensor(0.0), torch.tensor(1.0))


def l1_alternatives(q, cand, w) -> dict[str, Callable[[], torch.Tensor]]:
    b = len(q)
    one_per_loop = D._CompiledKernel(D._l1_t)  # the L1 kernel before queries were grouped
    return {
        "compiled, blocked (default)": lambda: D.l1_distance(q, cand, w, kernel="compiled"),
        "compiled, one call": (lambda: D._COMPILED["l1"].kernel(
            D._group_queries(q), cand.t().contiguous(), *_PLAIN)[:b]) if w is None else (
            lambda: D._COMPILED["weighted_l1"].kernel(q, cand.t().contiguous(), *_PLAIN, w)),
        **({"compiled, blocked, one query per loop": lambda: one_per_loop(q, cand)}
           if w is None else {}),
        **({"torch.cdist(p=1) (eager default)": lambda: torch.cdist(q, cand, p=1.0)}
           if w is None else {}),
        "chunked broadcast" + (" (eager default)" if w is not None else ""):
            lambda: chunked_one_to_all(
                (lambda c: (q[:, None] - c[None]).abs_().sum(-1)) if w is None
                else (lambda c: D._weighted_l1(q, c, w)),
                b, cand, DEFAULT_CHUNK_ELEMENTS),
    }


def _complex_modulus_t(q, ct, offset, sign):
    d = q.size(-1) // 2
    re, im = q[:, :d, None] - ct[None, :d, :], q[:, d:, None] - ct[None, d:, :]
    return offset + sign * (re * re + im * im).sqrt().sum(1)


_INDUCTOR_COMPLEX = torch.compile(_complex_modulus_t, dynamic=True,
                                  options={"cpp.dynamic_threads": True})


def complex_alternatives(q, cand) -> dict[str, Callable[[], torch.Tensor]]:
    half = q.size(-1) // 2

    def hypot_block(c: torch.Tensor) -> torch.Tensor:
        return torch.hypot(q[:, None, :half] - c[None, :, :half],
                           q[:, None, half:] - c[None, :, half:]).sum(-1)

    def complex_dtype_block(c: torch.Tensor) -> torch.Tensor:
        zq = torch.complex(q[:, :half], q[:, half:])
        return (zq[:, None] - torch.complex(c[:, :half], c[:, half:])[None]).abs().sum(-1)

    def inductor_blocks() -> torch.Tensor:
        # the former default: the transposed formula compiled by TorchInductor (exact vsqrtps)
        return torch.cat([_INDUCTOR_COMPLEX(q, ct, *_PLAIN) for ct in
                          D._CompiledKernel(_complex_modulus_t).blocks(cand)], dim=1)

    return {
        "C kernel, -mrecip square roots (default)":
            lambda: D.complex_distance(q, cand, kernel="compiled"),
        "torch.compile, blocked (the former default)": inductor_blocks,
        "chunked broadcast (eager default)": lambda: D.complex_distance(q, cand, kernel="eager"),
        "chunked torch.hypot": lambda: chunked_one_to_all(hypot_block, len(q), cand),
        "chunked complex dtype .abs()": lambda: chunked_one_to_all(complex_dtype_block, len(q),
                                                                   cand),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--entities", type=int, default=14541)
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--relations", type=int, default=474)  # FB15k-237 with inverses
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    b, n, d = args.queries, args.entities, args.dim
    per_1k = 1000 / b
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}; "
          f"B={b} queries x N={n} candidates x d={d}; seconds per 1k queries, best of "
          f"{args.repeats}")
    g = torch.Generator().manual_seed(0)

    print("\n== 1-to-all scoring per decoder (score_t, default kernels, evaluation mode) ==")
    configs = [("transe", {"p_norm": 1}), ("transe", {"p_norm": 2}), ("distmult", {}),
               ("complex", {}), ("rotate", {}), ("rotate", {"distance": "l2"}), ("pairre", {}),
               ("tucker", {})]
    for name, kwargs in configs:
        decoder = build_decoder(name, args.relations, d, **kwargs).eval()
        f = decoder.entity_channels
        x = torch.randn(n, f, generator=g)
        h = torch.randn(b, f, generator=g)
        r = torch.randint(args.relations, (b,), generator=g)
        with torch.no_grad():
            first = compile_time(lambda: decoder.score_t(h, r, x))  # noqa: B023
            seconds, _ = best_time(lambda: decoder.score_t(h, r, x), args.repeats)  # noqa: B023
            seconds_h, _ = best_time(lambda: decoder.score_h(r, h, x), 1)  # noqa: B023
        print(f"{decoder!r:<75} score_t {seconds * per_1k:7.3f} s   score_h "
              f"{seconds_h * per_1k:7.3f} s   (first call {first:5.1f} s)")
    assert set(DECODERS) == {name for name, _ in configs}

    print("\n== alternatives for the distances that are not a matrix product ==")
    q = torch.randn(b, d, generator=g)
    cand = torch.randn(n, d, generator=g)
    w = torch.randn(b, d, generator=g)
    q2, cand2 = torch.randn(b, 2 * d, generator=g), torch.randn(n, 2 * d, generator=g)
    groups = [("L1 (TransE)", l1_alternatives(q, cand, None)),
              ("weighted L1 (PairRE)", l1_alternatives(q, cand, w)),
              ("sum of complex moduli (RotatE)", complex_alternatives(q2, cand2))]
    with torch.no_grad():
        for title, alternatives in groups:
            print(f"-- {title}")
            reference = None
            for label, fn in alternatives.items():
                seconds, out = best_time(fn, args.repeats)
                if reference is None:
                    reference = (seconds, out)
                err = (out - reference[1]).abs().max().item() / reference[1].abs().max().item()
                print(f"   {label:<36} {seconds * per_1k:7.3f} s   "
                      f"x{seconds / reference[0]:5.2f} of default   max rel. diff {err:.1e}")


if __name__ == "__main__":
    main()
