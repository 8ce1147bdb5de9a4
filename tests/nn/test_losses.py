import math

import torch

from mmgnn.nn.losses import (
    BCEWithLabelSmoothing,
    CrossEntropy1vsAll,
    MarginRankingLoss,
    SelfAdversarialLoss,
    SoftplusLoss,
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


def test_cross_entropy_1vsall_reference():
    scores, gold = torch.randn(4, 6), torch.tensor([0, 5, 2, 2])
    ref = -(scores[torch.arange(4), gold] - scores.logsumexp(1)).mean()
    torch.testing.assert_close(CrossEntropy1vsAll()(scores, gold), ref)


def test_n3_penalty():
    f = [torch.tensor([[1.0, -2.0], [0.5, 0.0]]), torch.tensor([[3.0, 0.0], [0.0, 1.0]])]
    assert float(n3_penalty(f)) == (1 + 8 + 0.125 + 27 + 1) / 2
