"""K3M's initial-interactive feature fusion (IIFM, spec ``K3M.md``, section 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STRATEGIES = ("mean", "hard", "soft", "interaction")


class IIFM(nn.Module):
    r"""Initial-interactive feature fusion from `"Knowledge Perceived Multi-modal Pretraining
    in E-commerce" <https://arxiv.org/abs/2109.00895>`_ (Sec. 3.3; the released
    ``get_sequence_pooled_output_final``, flag ``--if_pre_sampling``).

    A modality has :math:`S` sequences of equal shape: its **individual** feature
    :math:`\mathbf{I}` (the embedding-layer output, source 0) and its **interactive** features
    :math:`\mathbf{C}_1, \dots, \mathbf{C}_{S-1}` (its stream after co-attention with each
    other modality; K3M has :math:`S = 3`). Per token:

    - ``mean`` (code 0): :math:`\frac{1}{S}(\mathbf{I} + \sum_s \mathbf{C}_s)`;
    - ``hard`` (code 1, hard-spl, the released default): with
      :math:`\bar{\mathbf{x}}_s = \mathrm{ReLU}(\mathbf{x}_s)` and one gate per source
      :math:`\boldsymbol{\alpha}_s = \mathrm{sigmoid}(W_s [\bar{\mathbf{x}}_0; \dots;
      \bar{\mathbf{x}}_{S-1}])`, a straight-through Gumbel-softmax over the :math:`S`
      sources **per token and per feature**, taking the gates as logits, picks one source:
      :math:`\mathbf{o} = \sum_s \mathbf{g}_s \odot \bar{\mathbf{x}}_s`,
      :math:`\mathbf{g} = \text{one-hot}`; in eval mode it picks the source of the
      largest gate, :math:`\mathbf{g} = \text{one-hot}(\arg\max_s \boldsymbol{\alpha}_s)`
      (no noise: the same input gives the same output). The released code keeps drawing
      Gumbel noise in eval mode (``deterministic_eval=False``), so a prediction changes from
      one call to the next;
    - ``soft`` (code 2, soft-spl): :math:`\mathbf{o} = W_o [\boldsymbol{\alpha}_0 \odot
      \bar{\mathbf{x}}_0; \dots; \boldsymbol{\alpha}_{S-1} \odot \bar{\mathbf{x}}_{S-1}]`;
    - ``interaction`` (code 3): :math:`\frac{1}{S-1} \sum_s \mathbf{C}_s` (the individual
      feature is ignored).

    The pooled modality vector is the mean of the fused sequence over its valid tokens after
    the first (the code drops ``[CLS]`` / the global region): :meth:`pool`.

    Args:
        channels (int): Feature width :math:`d`.
        num_sources (int): :math:`S`, individual feature included. (default: :obj:`3`)
        strategy (str): ``mean``, ``hard``, ``soft`` or ``interaction``. (default:
            ``hard``)
        tau (float): Gumbel-softmax temperature. (default: :obj:`1.0`)
        deterministic_eval (bool): ``hard`` picks the argmax gate in eval mode; :obj:`False`
            keeps the Gumbel noise there, as released. (default: :obj:`True`)

    Shapes:
        - **input:** :math:`S` tensors :math:`(*, d)`
        - **output:** :math:`(*, d)`
    """

    def __init__(self, channels: int, num_sources: int = 3, strategy: str = "hard",
                 tau: float = 1.0, deterministic_eval: bool = True) -> None:
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if strategy == "interaction" and num_sources < 2:
            raise ValueError("strategy 'interaction' needs at least one interactive source "
                             "(num_sources >= 2)")
        self.channels, self.num_sources, self.strategy = channels, num_sources, strategy
        self.tau, self.deterministic_eval = tau, deterministic_eval
        gated = strategy in ("hard", "soft")
        self.gates = nn.ModuleList(nn.Linear(num_sources * channels, channels)
                                   for _ in range(num_sources if gated else 0))
        self.lin_out = nn.Linear(num_sources * channels, channels) if strategy == "soft" \
            else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in self.gates:
            lin.reset_parameters()
        if self.lin_out is not None:
            self.lin_out.reset_parameters()

    def gate_values(self, sources: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        """The ReLU'd sources and their sigmoid gates stacked :obj:`(*, S, d)`."""
        relu = [F.relu(x) for x in sources]
        cat = torch.cat(relu, dim=-1)
        return relu, torch.stack([torch.sigmoid(g(cat)) for g in self.gates], dim=-2)

    def forward(self, sources: list[Tensor]) -> Tensor:
        if len(sources) != self.num_sources:
            raise ValueError(f"IIFM expects {self.num_sources} sources (individual first), "
                             f"got {len(sources)}")
        if self.strategy == "mean":
            return torch.stack(sources).mean(0)
        if self.strategy == "interaction":
            return torch.stack(sources[1:]).mean(0)
        relu, alpha = self.gate_values(sources)
        if self.strategy == "soft":
            return self.lin_out(torch.cat([x * alpha[..., s, :] for s, x in enumerate(relu)],
                                          dim=-1))
        if self.training or not self.deterministic_eval:
            pick = F.gumbel_softmax(alpha, tau=self.tau, hard=True, dim=-2)
        else:
            pick = F.one_hot(alpha.argmax(-2), self.num_sources).movedim(-1, -2).to(alpha)
        return (pick * torch.stack(relu, dim=-2)).sum(-2)

    @staticmethod
    def pool(x: Tensor, lengths: Tensor) -> Tensor:
        r""":math:`\frac{1}{\ell - 1}\sum_{l=1}^{\ell - 1} x_l` per row of :obj:`(B, L, d)`
        (zero where :math:`\ell \le 1`)."""
        pos = torch.arange(x.size(1), device=x.device)
        valid = ((pos[None] >= 1) & (pos[None] < lengths[:, None])).to(x.dtype)
        return (x * valid[..., None]).sum(1) / (lengths - 1).clamp(min=1)[:, None].to(x.dtype)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.channels}, num_sources={self.num_sources}, "
                f"strategy={self.strategy!r})")
