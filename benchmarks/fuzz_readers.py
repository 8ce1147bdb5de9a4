"""Fuzzing every reader and side-file format: outcome counts over 5,000+ malformed inputs.

Each input is a real-looking file of one format (OpenKE 2id vocabulary and triples, TSV and
N-Triples triples, numeric and text side files, precomputed ``.npy`` / ``.npz`` / ``.pt``
features) damaged by random mutations: byte flips, truncation, CRLF / CR / ``\\r\\r\\n`` line
ends, byte-order marks, stray and Unicode whitespace, non-ASCII digits, huge ids, wrong column
counts, NaN / inf / out-of-range values, duplicate or blank lines, wrong count lines, bad
dtypes, shapes, masks and entity names. The cases and the independent reference parse are those
of the property-based suite, ``tests/data/fuzz_cases.py``. Outcomes per input:

* ``ok``: loaded exactly what the reference parse says the file holds;
* ``error+line`` / ``error+file``: a ValueError naming the file and the line / only the file;
* ``raw``: any other exception, or one not naming the file;
* silent, as ``changed``: loaded data that differs from what the file holds, or as
  ``accepted``: loaded a file that breaks the format rules (a name with an edge space or a
  stray ``\\r``, ``+1`` as an id, ...);
* ``hang``: no answer within ``--timeout`` seconds (``signal.setitimer``).

The goal is 0 raw, 0 changed, 0 accepted, 0 hang. To measure an older mmgnn, put it first on
the path::

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old python benchmarks/fuzz_readers.py

Run of record: ``benchmarks/results/fuzz_readers.txt``. The exit code is 1 if any input ended
raw, changed, accepted or hung.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cases_module():
    # mmgnn is imported first, from PYTHONPATH or the installed package: that decides which
    # mmgnn is measured (its submodules follow the package's own path); only the test helpers
    # come from this checkout.
    import mmgnn  # noqa: F401

    sys.path.insert(0, str(ROOT))
    from tests.data import fuzz_cases

    return fuzz_cases


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-format", type=int, default=600,
                        help="inputs per format (9 formats; default: 600, 5,400 in all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per input")
    parser.add_argument("--examples", type=int, default=3,
                        help="bad outcomes shown per format and kind")
    args = parser.parse_args(argv)
    fz = _cases_module()
    readers = Path(fz.read_id_vocab.__code__.co_filename).parents[1]
    print(f"mmgnn from {readers}; {args.per_format} inputs per format, "
          f"seed {args.seed}, timeout {args.timeout:g} s")
    signal.signal(signal.SIGALRM, _alarm)
    counts: dict[str, Counter] = {}
    shown: list[str] = []
    start = time.perf_counter()
    for fmt in fz.FORMATS:
        counts[fmt] = Counter()
        for i in range(args.per_format):
            rnd = random.Random(f"{args.seed}/{fmt}/{i}")
            with tempfile.TemporaryDirectory() as folder:
                case = fz.make_case(fmt, rnd, Path(folder))
                signal.setitimer(signal.ITIMER_REAL, args.timeout)
                try:
                    outcome, _, detail = fz.run_case(case)
                except _Timeout:
                    outcome, detail = "hang", f"no answer in {args.timeout:g} s"
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                counts[fmt][outcome] += 1
                if outcome not in fz.CLEAN and counts[fmt][outcome] <= args.examples:
                    shown.append(f"[{fmt} #{i} {outcome}] {fz.describe(case)}\n    -> {detail}")
    seconds = time.perf_counter() - start

    columns = fz.OUTCOMES
    titles = ("loaded exactly", "error+line", "error+file", "raw", "silent:changed",
              "silent:accepted", "hang")
    width = max(len(f) for f in fz.FORMATS) + 2
    print(f"\n{'format':<{width}}{'inputs':>7}" + "".join(f"{t:>16}" for t in titles))
    total = Counter()
    for fmt, c in counts.items():
        total.update(c)
        print(f"{fmt:<{width}}{sum(c.values()):>7}" + "".join(f"{c[k]:>16,}" for k in columns))
    n = sum(total.values())
    print(f"{'all':<{width}}{n:>7}" + "".join(f"{total[k]:>16,}" for k in columns))
    print(f"{'%':<{width}}{'':>7}" + "".join(f"{100 * total[k] / n:>15.1f}%" for k in columns))
    bad = n - sum(total[k] for k in fz.CLEAN)
    print(f"\n{n:,} inputs in {seconds:.0f} s; raw + changed + accepted + hang = {bad:,}")
    if shown:
        print("\nExamples of raw / changed / accepted / hang outcomes:")
        print("\n".join(shown))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
