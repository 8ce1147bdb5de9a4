"""Property-based fuzzing of every reader and side-file format against independent parses.

Each example is a real-looking file of one format damaged by 0-3 random mutations
(``tests/data/fuzz_cases.py``), loaded through the public API. The library must either raise
its clean error naming the file (and the line, for text formats), or load exactly what the
reference parse of ``fuzz_cases`` (written from the format rules, sharing no code with the
readers) says the file holds, and it must reject exactly the files the reference rejects.
Examples are derandomized, so CI sees the same inputs every run; ``benchmarks/fuzz_readers.py``
runs 5,000+ of the same cases and counts the outcomes.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.data.fuzz_cases import FORMATS, SUFFIX, describe, make_case, run_case

EXAMPLES = dict.fromkeys(FORMATS, 200)


@pytest.mark.parametrize("fmt", FORMATS)
def test_malformed_input_is_a_clean_error_or_loads_exactly(fmt):
    @settings(max_examples=EXAMPLES[fmt], deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example,
                                     HealthCheck.data_too_large])
    @given(rnd=st.randoms(use_true_random=False))
    def check(rnd: random.Random) -> None:
        with tempfile.TemporaryDirectory() as folder:
            case = make_case(fmt, rnd, Path(folder))
            outcome, accepted, detail = run_case(case)
            context = f"{describe(case)}\n-> {outcome}: {detail}"
            assert outcome in ("ok", "error_line", "error_file"), context
            if fmt not in SUFFIX:  # a text format: every error names its line
                assert outcome != "error_file", context
            assert (outcome == "ok") == accepted, context  # rejects exactly what is malformed

    check()
