import math

import pytest
import torch

from mmgnn.nn.losses import (
    BCEWithLabelSmoothing,
    CrossEntropy1vsAll,
    CrossModalInfoNCE,
    MarginRankingLoss,
    SelfAdversarialLoss,
    SoftplusLoss,
    build_loss,
    n3_penalty,
)


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def test_margin_loss_reference():
    pos, neg = torch.tensor([1.0, -2.0]), torch.tensor([[0.5, 3.0], [-4.0, -2.5]])
    ref = sum(max(0.0, 1.0 - p + n) for p, row in zip([1.0, -2.0], neg.tolist(), strict=True)
              for n in row) / 4
    assert float(MarginRankingLoss(1.0)(pos, neg)) == ref


def test_softplus_loss_reference():
    pos, neg = torch.tensor([1.0, -2.0]), torch.tensor([[0.5, 3.0], [-4.0, -2.5]])
    ref_pos = sum(math.log1p(math.exp(-p)) for p in pos.tolist()) / 2
    ref_neg = sum(math.log1p(math.exp(n)) for n in neg.view(-1).tolist()) / 4
    assert abs(float(SoftplusLoss()(pos, neg)) - 0.5 * (ref_pos + ref_neg)) < 1e-6


def test_self_adversarial_loss_reference_and_constant_weights():
    pos = torch.tensor([1.0, -0.5], requires_grad=True)
    neg = torch.tensor([[0.5, 3.0, -1.0], [-4.0, -2.5, 0.0]], requires_grad=True)
    gamma, alpha = 2.0, 0.7
    loss = SelfAdversarialLoss(gamma, alpha)(pos, neg)
    ref_pos = -sum(math.log(sigmoid(gamma + p)) for p in pos.tolist()) / 2
    ref_neg = 0.0
    for row in neg.tolist():
        w = [math.exp(alpha * n) for n in row]
        z = sum(w)
        ref_neg += -sum(wi / z * math.log(sigmoid(-gamma - n))
                        for wi, n in zip(w, row, strict=True))
    ref_neg /= 2
    assert abs(float(loss) - 0.5 * (ref_pos + ref_neg)) < 1e-6
    loss.backward()
    # d loss / d neg_k = 0.5/B * p_k * sigmoid(gamma + n_k): the weights carry no gradient.
    row = neg.detach()[0]
    p = torch.softmax(alpha * row, 0)
    torch.testing.assert_close(neg.grad[0], 0.25 * p * torch.sigmoid(gamma + row))


def test_bce_label_smoothing_reference():
    scores = torch.randn(3, 5)
    y = torch.zeros(3, 5)
    y[0, 1] = y[2, 4] = y[2, 0] = 1
    eps = 0.1
    yt = (1 - eps) * y + eps / 5
    ref = -(yt * torch.log(torch.sigmoid(scores)) + (1 - yt) * torch.log(1 - torch.sigmoid(scores)))
    torch.testing.assert_close(BCEWithLabelSmoothing(eps)(scores, y), ref.mean())


def test_bce_released_smoothing_adds_one_over_n():
    """ConvE/TuckER/IMF code: targets 0.9 y + 1/N (spec IMF.md, section 4)."""
    scores = torch.randn(2, 4)
    y = torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    total = 0.0
    for i in range(2):
        for j in range(4):
            p, yt = sigmoid(float(scores[i, j])), 0.9 * float(y[i, j]) + 1 / 4
            total -= yt * math.log(p) + (1 - yt) * math.log(1 - p)
    loss = BCEWithLabelSmoothing(0.1, form="released")(scores, y)
    assert abs(float(loss) - total / 8) < 1e-5
    with pytest.raises(ValueError, match="form"):
        BCEWithLabelSmoothing(0.1, form="paper")


def _info_nce_reference(views, masks, tau):
    """Symmetric InfoNCE per pair of views, one anchor at a time with explicit sums."""
    pair_losses = []
    for a in range(len(views)):
        for b in range(a + 1, len(views)):
            rows = [i for i in range(len(views[a])) if masks[a][i] and masks[b][i]]
            if len(rows) < 2:
                continue
            za = [views[a][i] / views[a][i].norm() for i in rows]
            zb = [views[b][i] / views[b][i].norm() for i in rows]
            total = 0.0
            for i in range(len(rows)):
                row = [math.exp(float(za[i] @ zb[j]) / tau) for j in range(len(rows))]
                col = [math.exp(float(za[j] @ zb[i]) / tau) for j in range(len(rows))]
                total -= math.log(row[i] / sum(row)) + math.log(col[i] / sum(col))
            pair_losses.append(total / (2 * len(rows)))
    return sum(pair_losses) / len(pair_losses)


def test_cross_modal_info_nce_reference_with_masks():
    torch.manual_seed(0)
    views = [torch.randn(6, 4) for _ in range(3)]
    masks = [torch.ones(6, dtype=torch.bool), torch.tensor([1, 1, 0, 1, 1, 1]).bool(),
             torch.tensor([0, 1, 1, 1, 0, 1]).bool()]
    loss = CrossModalInfoNCE(temperature=0.5)(views, masks)
    assert abs(float(loss) - _info_nce_reference(views, masks, 0.5)) < 1e-5
    # Aligned views (every entity its own, far-apart direction) cost almost nothing.
    eye = torch.eye(6)
    assert float(CrossModalInfoNCE(0.05)([eye, 2 * eye])) < 1e-6
    # A pair without two common rows is skipped; no pair at all gives zero.
    none = [torch.ones(6, dtype=torch.bool), torch.tensor([1, 0, 0, 0, 0, 0]).bool()]
    assert float(CrossModalInfoNCE()(views[:2], none)) == 0.0
    with pytest.raises(ValueError, match="2 views"):
        CrossModalInfoNCE()(views[:1])


def test_cross_entropy_1vsall_reference():
    scores, gold = torch.randn(4, 6), torch.tensor([0, 5, 2, 2])
    ref = -(scores[torch.arange(4), gold] - scores.logsumexp(1)).mean()
    torch.testing.assert_close(CrossEntropy1vsAll()(scores, gold), ref)


def test_n3_penalty():
    f = [torch.tensor([[1.0, -2.0], [0.5, 0.0]]), torch.tensor([[3.0, 0.0], [0.0, 1.0]])]
    assert float(n3_penalty(f)) == (1 + 8 + 0.125 + 27 + 1) / 2


def test_loss_registry_kinds_and_build_loss():
    from mmgnn.nn.losses import (
        LOSSES,
        CrossEntropy1vsAll,
        SelfAdversarialLoss,
        build_loss,
        loss_kind,
        register_loss,
    )

    assert LOSSES.names() == ["bce", "ce", "margin", "self_adversarial", "softplus"]
    assert [loss_kind(n) for n in LOSSES.names()] == ["one_to_all", "one_to_all", "negative",
                                                      "negative", "negative"]
    assert CrossEntropy1vsAll.takes_gold_ids and not LOSSES.get("bce")[0].takes_gold_ids
    settings = dict(margin=2.0, temperature=0.5, label_smoothing=0.2, form="released")
    loss = build_loss("self_adversarial", **settings)  # only the settings it takes
    assert type(loss) is SelfAdversarialLoss and (loss.margin, loss.temperature) == (2.0, 0.5)
    bce = build_loss("BCE", **settings)
    assert (bce.label_smoothing, bce.form) == (0.2, "released")
    assert build_loss("margin", **settings).margin == 2.0
    with pytest.raises(KeyError, match="did you mean 'margin'"):
        build_loss("margn")

    class NoKind(torch.nn.Module):
        pass

    with pytest.raises(ValueError, match="must say its kind"):
        register_loss("no_kind_test", NoKind)
    assert "no_kind_test" not in LOSSES


def test_build_loss_passes_only_the_settings_a_loss_takes():
    # A run's config holds every loss's settings; softplus has no constructor of its own.
    settings = dict(margin=2.0, temperature=0.5, label_smoothing=0.1, form="standard")
    assert type(build_loss("softplus", **settings)).__name__ == "SoftplusLoss"
    assert build_loss("margin", **settings).margin == 2.0
