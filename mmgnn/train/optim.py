r"""Row-wise AdaGrad: the optimiser for embedding tables too large to keep Adam's state.

Adam keeps two moments per parameter, so an entity table of :math:`N \times d` floats costs
:math:`4 N d` floats in training (weights, a dense gradient, two moments). With sparse
gradients (``KGEModel(sparse=True)``) the gradient is only the batch's rows, and row-wise
AdaGrad keeps one accumulator per *row*: the table then costs :math:`N (d + 1)` floats, about
a quarter of Adam's. This is the optimiser PyTorch-BigGraph trains its embeddings with (Lerer
et al., 2019, *PyTorch-BigGraph: A Large-scale Graph Embedding System*, Sec. 3: "a variant of
Adagrad ... with one learning rate per embedding vector").
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


class RowAdagrad(torch.optim.Optimizer):
    r"""AdaGrad with one accumulator per row of each parameter (Lerer et al., 2019), for
    dense and sparse gradients.

    For row :math:`i` of a parameter with gradient rows :math:`g_i \in \mathbb{R}^d`:

    .. math::
        G_i \leftarrow G_i + \tfrac{1}{d}\|g_i\|_2^2, \qquad
        w_i \leftarrow w_i - \eta\, \frac{g_i}{\sqrt{G_i} + \epsilon}

    (Duchi et al., 2011, with the squared gradient averaged over the row). A sparse gradient
    (:class:`torch.nn.Embedding` with ``sparse=True``) updates only its rows, and rows without
    gradient do not move: the result equals the dense update of the same gradient, since a
    zero row changes neither :math:`G_i` nor :math:`w_i`. One-dimensional parameters
    (biases) get one accumulator per entry, i.e. plain AdaGrad.

    Args:
        params (iterable): Parameters or parameter groups.
        lr (float): Learning rate :math:`\eta`. (default: :obj:`0.01`)
        eps (float): :math:`\epsilon`. (default: :obj:`1e-10`)
        initial_accumulator_value (float): Initial :math:`G_i`. (default: :obj:`0.0`)
        weight_decay (float): Must be 0: a decay term would make every row's gradient
            nonzero and the sparse update inexact. (default: :obj:`0.0`)
        fused (bool, optional): Accepted for the trainer's interface; must not be
            :obj:`True` (there is no fused kernel). (default: :obj:`None`)
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, eps: float = 1e-10,
                 initial_accumulator_value: float = 0.0, weight_decay: float = 0.0,
                 fused: bool | None = None) -> None:
        if not lr > 0:
            raise ValueError(f"RowAdagrad: lr must be > 0, got {lr}")
        if weight_decay:
            raise ValueError(f"RowAdagrad has no weight decay (got {weight_decay}): it would "
                             f"make every row's gradient nonzero")
        if fused:
            raise TypeError("RowAdagrad has no fused kernel")
        super().__init__(params, {"lr": lr, "eps": eps,
                                  "initial_accumulator_value": initial_accumulator_value})

    @staticmethod
    def _rows(p: Tensor) -> int:
        return p.size(0) if p.dim() > 0 else 1

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 (torch's contract)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, eps = group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    shape = p.shape[:1] if p.dim() > 1 else p.shape
                    state["sum"] = torch.full(shape, float(group["initial_accumulator_value"]),
                                              dtype=p.dtype, device=p.device)
                    state["step"] = torch.zeros((), dtype=torch.float32)
                state["step"] += 1
                acc = state["sum"]
                grad = p.grad
                if grad.is_sparse:
                    grad = grad.coalesce()  # one row per index: duplicates summed
                    idx, values = grad.indices()[0], grad.values()
                    flat = values.reshape(len(values), -1)
                    acc.index_add_(0, idx, flat.square().mean(1) if p.dim() > 1
                                   else flat.square().squeeze(1))
                    scale = acc.index_select(0, idx).sqrt_().add_(eps)
                    step = values / scale.view(-1, *([1] * (values.dim() - 1)))
                    p.index_add_(0, idx, step, alpha=-lr)
                elif p.dim() > 1:
                    acc.add_(grad.reshape(len(grad), -1).square().mean(1))
                    std = acc.sqrt().add_(eps).view(-1, *([1] * (p.dim() - 1)))
                    p.addcdiv_(grad, std, value=-lr)
                else:
                    acc.addcmul_(grad, grad)
                    p.addcdiv_(grad, acc.sqrt().add_(eps), value=-lr)
        return loss
