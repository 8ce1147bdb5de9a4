"""Modality fusion modules: one file per module."""

from __future__ import annotations

from mmgnn.nn.fusion.tucker_fusion import TuckerFusion

__all__ = ["TuckerFusion"]
