"""Negative samplers, 1-to-all batches, the two training batch types and the sampler registry.

The MMRNS names (:class:`MMRNSSampler`, ...) load on first use, so that importing the fixed
samplers does not import the multimodal fusion modules MMRNS is built from.
"""

from __future__ import annotations

import importlib
from typing import Any

from mmgnn.sampling.base import NegativeSampler, TripleScorer
from mmgnn.sampling.batches import NegativeBatch, QueryBatch
from mmgnn.sampling.bernoulli import BernoulliSampler
from mmgnn.sampling.head_tail import HeadTailSampler
from mmgnn.sampling.one_to_all import OneToAllBatches
from mmgnn.sampling.registry import (
    NEGATIVE_FILTERS,
    SAMPLERS,
    build_sampler,
    negative_filter_index,
    register_sampler,
)
from mmgnn.sampling.uniform import UniformSampler

SAMPLERS.register("uniform", UniformSampler.from_kg)
SAMPLERS.register("bernoulli", BernoulliSampler.from_kg)
SAMPLERS.register("head_tail", HeadTailSampler.from_kg)
SAMPLERS.register("mmrns", "mmgnn.sampling.mmrns:mmrns_sampler")

_MMRNS = ("MMRNSSampler", "exploration_temperature", "gumbel_top_k", "gumbel_top_k_rows")


def __getattr__(name: str) -> Any:
    if name in _MMRNS:
        return getattr(importlib.import_module("mmgnn.sampling.mmrns"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["NegativeSampler", "TripleScorer", "UniformSampler", "BernoulliSampler",
           "HeadTailSampler", "NegativeBatch", "QueryBatch", "OneToAllBatches",
           "SAMPLERS", "register_sampler", "build_sampler", "NEGATIVE_FILTERS",
           "negative_filter_index", *_MMRNS]
