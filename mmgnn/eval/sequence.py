"""Metrics of MKGformer's text tasks: micro precision / recall / F1 of relation extraction
over the labels other than "no relation", and entity-level micro F1 of BIO tagging."""

from __future__ import annotations

from collections.abc import Sequence


def relation_prf(gold: Sequence[int], pred: Sequence[int], negative: int | None
                 ) -> dict[str, float]:
    r"""Accuracy and micro precision, recall and F1 of relation labels, the "no relation"
    label ``negative`` left out, as the released ``MRE/modules/metrics.py: eval_result``:

    .. math::
        P = \frac{|\{i: \hat y_i = y_i \ne n\}|}{|\{i: \hat y_i \ne n\}|},\quad
        R = \frac{|\{i: \hat y_i = y_i \ne n\}|}{|\{i: y_i \ne n\}|},\quad
        F_1 = \frac{2PR}{P + R}

    (each :math:`0` when its denominator is). ``negative=None``: every label counts.

    Returns:
        dict: ``accuracy``, ``precision``, ``recall``, ``f1``, ``support`` (gold
        positives).
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    if not len(gold):
        raise ValueError("no examples to score")
    correct = sum(int(g == p) for g, p in zip(gold, pred, strict=True))
    tp = sum(int(g == p and g != negative) for g, p in zip(gold, pred, strict=True))
    pred_pos = sum(int(p != negative) for p in pred)
    gold_pos = sum(int(g != negative) for g in gold)
    p = tp / pred_pos if pred_pos else 0.0
    r = tp / gold_pos if gold_pos else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"accuracy": correct / len(gold), "precision": p, "recall": r, "f1": f1,
            "support": gold_pos}


def bio_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities ``(type, start, end)`` (``end`` exclusive) of one BIO tag sequence, read
    as ``conlleval`` and ``seqeval``'s default mode do: an entity starts at ``B-X``, or at
    ``I-X`` after ``O`` or after a tag of another type; it ends before ``O``, ``B-*`` or a
    tag of another type. A tag that is not ``O``, ``B-*`` or ``I-*`` (the released
    word-piece labels ``X``, ``[CLS]``, ...) counts as ``O``."""
    out, start, kind = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, t = tag.partition("-")
        if prefix not in ("B", "I") or not t:
            prefix, t = "O", None
        if start is not None and (prefix != "I" or t != kind):
            out.append((kind, start, i))
            start = None
        if prefix == "B" or (prefix == "I" and start is None):
            start, kind = i, t
    return out


def entity_prf(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]
               ) -> dict[str, float]:
    r"""Entity-level micro precision, recall and F1 over sentences of BIO tags
    (:func:`bio_entities`): an entity counts as found when its type and both ends match,
    :math:`F_1 = 2PR / (P + R)`. Equal to ``seqeval.metrics`` ``precision_score`` /
    ``recall_score`` / ``f1_score`` in their default mode (a test checks it).

    Returns:
        dict: ``precision``, ``recall``, ``f1``, ``support`` (gold entities), ``predicted``.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    tp = n_gold = n_pred = 0
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        ge, pe = set(bio_entities(g)), set(bio_entities(p))
        tp += len(ge & pe)
        n_gold += len(ge)
        n_pred += len(pe)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": n_gold,
            "predicted": n_pred}
