"""Negative samplers and 1-to-all batches."""

from mmgnn.sampling.base import NegativeSampler
from mmgnn.sampling.bernoulli import BernoulliSampler
from mmgnn.sampling.head_tail import HeadTailSampler
from mmgnn.sampling.mmrns import (
    MMRNSSampler,
    exploration_temperature,
    gumbel_top_k,
    gumbel_top_k_rows,
)
from mmgnn.sampling.one_to_all import OneToAllBatch, OneToAllBatches
from mmgnn.sampling.uniform import UniformSampler

__all__ = ["NegativeSampler", "UniformSampler", "BernoulliSampler", "HeadTailSampler",
           "OneToAllBatch", "OneToAllBatches", "MMRNSSampler", "exploration_temperature",
           "gumbel_top_k", "gumbel_top_k_rows"]
