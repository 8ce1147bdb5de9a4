"""Modality fusion modules: one file per module."""

from __future__ import annotations

from mmgnn.nn.fusion.caf import CorrelationAwareFusion
from mmgnn.nn.fusion.co_attention import CoAttentionLayer
from mmgnn.nn.fusion.comat import ModalityGenerator, gradient_penalty
from mmgnn.nn.fusion.hybrid_encoder import HybridEncoder
from mmgnn.nn.fusion.iifm import IIFM
from mmgnn.nn.fusion.kca import KCA
from mmgnn.nn.fusion.pgi import PrefixGuidedAttention
from mmgnn.nn.fusion.redaf import ReDAF
from mmgnn.nn.fusion.tucker_fusion import TuckerFusion

__all__ = ["CoAttentionLayer", "IIFM", "CorrelationAwareFusion", "HybridEncoder", "KCA",
           "ModalityGenerator", "PrefixGuidedAttention", "ReDAF", "TuckerFusion",
           "gradient_penalty"]
