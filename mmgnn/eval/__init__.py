"""Filtered link-prediction evaluation."""

from mmgnn.eval.ranking import (
    HITS,
    SIDES,
    TIES,
    LinkScorer,
    RankingMetrics,
    RankingResult,
    evaluate,
    rank_of_gold,
)

__all__ = ["HITS", "SIDES", "TIES", "LinkScorer", "RankingMetrics", "RankingResult", "evaluate",
           "rank_of_gold"]
