"""RotatE (Sun et al., 2019)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mmgnn.nn.kge.base import KGEDecoder, as_complex, gather_pair
from mmgnn.nn.kge.candidates import candidate_modulus, kernel_applies
from mmgnn.nn.kge.distances import complex_distance, l2_distance
from mmgnn.utils.compile import check_kernel

DISTANCES = ("complex", "l2")


class RotatEInit:
    r"""The initialisation of RotatE's released code (Sun et al., 2019), which PairRE's code
    inherits: relation and entity parameters drawn from :math:`\mathcal{U}(-\rho, \rho)` with
    :math:`\rho = (\gamma + \epsilon) / d` (margin :math:`\gamma`, :math:`\epsilon`, width
    :math:`d`). Mixed into a :class:`~mmgnn.nn.kge.base.KGEDecoder` with ``margin``,
    ``epsilon`` and a ``rel_emb`` table."""

    margin: float
    epsilon: float
    hidden_channels: int
    rel_emb: torch.nn.Embedding

    @property
    def embedding_range(self) -> float:
        r""":math:`\rho = (\gamma + \epsilon) / d`."""
        return (self.margin + self.epsilon) / self.hidden_channels

    def reset_parameters(self) -> None:
        torch.nn.init.uniform_(self.rel_emb.weight, -self.embedding_range, self.embedding_range)

    @torch.no_grad()
    def reset_entity_parameters(self, weight: Tensor) -> None:
        torch.nn.init.uniform_(weight, -self.embedding_range, self.embedding_range)


class RotatE(RotatEInit, KGEDecoder):
    r"""The rotational decoder from `"RotatE: Knowledge Graph Embedding by Relational Rotation
    in Complex Space" <https://arxiv.org/abs/1902.10197>`_ (Sun et al., 2019, Eq. 3 and Sec. 3.3)

    .. math::
        f(h, r, t) = \gamma - \sum_{k=1}^{d} |e_{h,k}\, r_k - e_{t,k}|,
        \qquad r_k = e^{i\theta_{r,k}}

    with :math:`\mathbf{e} \in \mathbb{C}^d` stored as real tensors of width :math:`2d`
    laid out :obj:`[re | im]` and :math:`|\cdot|` the complex modulus (the paper's distance,
    ``distance="complex"``). ``distance="l2"`` gives
    :math:`\gamma - \|\mathbf{e}_h \circ \mathbf{r} - \mathbf{e}_t\|_2` over all :math:`2d`
    real coordinates, which is what PyG's :class:`torch_geometric.nn.kge.RotatE` computes.

    As in the official code (``DeepGraphLearning/KnowledgeGraphEmbedding``), the margin
    :math:`\gamma` is part of the score (train with a self-adversarial loss of margin 0),
    entities are drawn from :math:`\mathcal{U}(-\rho, \rho)` with
    :math:`\rho = (\gamma + \epsilon)/d`, and each relation stores raw values
    :math:`\tilde\theta \sim \mathcal{U}(-\rho, \rho)` read as phases
    :math:`\theta = \tilde\theta / (\rho / \pi) \in (-\pi, \pi)` (:meth:`phase`). Storing the
    scaled value rather than the phase itself matters for training: an optimiser step of a
    given size turns the phase :math:`\pi/\rho` times further, as in the reference runs.

    1-to-all scoring: for ``"l2"`` one matrix product; for ``"complex"``
    :func:`~mmgnn.nn.kge.distances.complex_distance` (a compiled fused kernel, or chunked with
    bounded memory; see ``kernel``). Head queries use :math:`|c_k r_k - t_k| =
    |c_k - t_k \bar r_k|` (since :math:`|r_k| = 1`), as the official code's head batches do.

    Negative-sampling training (:meth:`score_corruptions`, the paper's distance): the
    positive and its :math:`K` corruptions are distances of gathered candidate rows to one
    query per triple and side, :math:`\mathbf{e}_h \circ \mathbf{r}` for a tail
    corruption, :math:`\mathbf{e}_t \circ \bar{\mathbf{r}}` for a head corruption, in the
    C kernel of :func:`~mmgnn.nn.kge.candidates.candidate_modulus` (the one NativE's step
    uses): no :obj:`(B, K, 2d)` gathered, rotated or difference tensors forward or backward.
    On DB15K (batch 1024, one thread) a training step costs 0.21x the PyTorch formula's at
    dim 64 / 32 negatives and 0.09x at dim 250 / 128 negatives
    (``benchmarks/native_quality.py --speed``, ``benchmarks/results/native_speed.jsonl``).

    Args:
        num_relations (int): Number of relations.
        hidden_channels (int): Number of complex dimensions :math:`d`.
        margin (float): :math:`\gamma`; the official default is 12 (its FB15k-237 script uses
            9, WN18RR 6). (default: :obj:`12.0`)
        epsilon (float): :math:`\epsilon` of the initialisation range. (default: :obj:`2.0`)
        distance (str): ``"complex"`` (the paper) or ``"l2"`` (PyG). (default: :obj:`"complex"`)
        kernel (str): 1-to-all kernel of the ``"complex"`` distance: ``"auto"``,
            ``"compiled"`` or ``"eager"`` (see :mod:`mmgnn.nn.kge.distances`).
            (default: :obj:`"auto"`)
        step_kernel (str): How :meth:`score_corruptions` scores a training step's
            corruptions with the ``"complex"`` distance: ``"auto"`` or ``"compiled"``, the C
            kernel of :func:`~mmgnn.nn.kge.candidates.candidate_modulus` where it runs
            (float32 / float64 on CPU, outside :func:`torch.compile`; equal within float
            rounding), else the PyTorch formula; ``"eager"``, always the PyTorch formula
            (gathered rows through :meth:`score_hrt`), which trains bit-identically to mmgnn
            before the kernel (commit 534eba9). (default: :obj:`"auto"`)
        **kwargs: ``chunk_elements`` of :class:`~mmgnn.nn.kge.base.KGEDecoder`.

    Shapes:
        - **entities:** :math:`(*, 2d)` laid out :obj:`[re | im]`; scores as in
          :class:`~mmgnn.nn.kge.base.KGEDecoder` (:meth:`score_hrt` broadcasts over leading
          dimensions).
    """

    def __init__(self, num_relations: int, hidden_channels: int, margin: float = 12.0,
                 epsilon: float = 2.0, distance: str = "complex", kernel: str = "auto",
                 step_kernel: str = "auto", **kwargs) -> None:
        super().__init__(num_relations, hidden_channels, **kwargs)
        if distance not in DISTANCES:
            raise ValueError(f"RotatE distance must be one of {DISTANCES}, got {distance!r}")
        self.margin = margin
        self.epsilon = epsilon
        self.distance = distance
        self.kernel = check_kernel(kernel)
        self.step_kernel = check_kernel(step_kernel)
        self.rel_emb = torch.nn.Embedding(num_relations, hidden_channels)
        self.reset_parameters()

    @property
    def entity_channels(self) -> int:
        return 2 * self.hidden_channels

    def phase(self, r: Tensor) -> Tensor:
        r"""Rotation phases :math:`\theta_r` :obj:`(..., d)` of relations ``r``."""
        return self.rel_emb(r) * (math.pi / self.embedding_range)

    def _rotate(self, x: Tensor, r: Tensor, conjugate: bool = False) -> Tensor:
        """``x * e^{i theta_r}`` (or ``e^{-i theta_r}``) in the ``[re | im]`` layout."""
        theta = self.phase(r)
        cos, sin = theta.cos(), theta.sin()
        if conjugate:
            sin = -sin
        x_re, x_im = x[..., :self.hidden_channels], x[..., self.hidden_channels:]
        return torch.cat([x_re * cos - x_im * sin, x_re * sin + x_im * cos], dim=-1)

    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        diff = self._rotate(h, r) - t
        if self.distance == "l2":
            return self.margin - torch.linalg.vector_norm(diff, dim=-1)
        d = self.hidden_channels
        # the pair on a last axis of 2: a norm over a leading axis of 2 is a strided reduction,
        # ~9x slower forward + backward on (B, K, 2d) negatives
        moduli = torch.linalg.vector_norm(torch.stack([diff[..., :d], diff[..., d:]], dim=-1),
                                          dim=-1)
        return self.margin - moduli.sum(dim=-1)

    def score_corruptions(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor,
                          corrupt_head: Tensor, candidates: Tensor) -> Tensor:
        r"""Scores :obj:`(B, K)` of the corruptions (see
        :meth:`~mmgnn.nn.kge.base.KGEDecoder.score_corruptions`): with the complex distance,
        :math:`\gamma - D` of :func:`~mmgnn.nn.kge.candidates.candidate_modulus` (one block,
        weight 1) between candidate :math:`c`'s row and triple :math:`i`'s query,
        :math:`\mathbf{e}_h \circ \mathbf{r}` where the tail is replaced and
        :math:`\mathbf{e}_t \circ \bar{\mathbf{r}}` where the head is: :math:`|e_{h,k}
        r_k - e_{c,k}|` and :math:`|e_{c,k} r_k - e_{t,k}| = |e_{c,k} - e_{t,k} \bar r_k|`
        (:math:`|r_k| = 1`), so the same scores as :meth:`score_hrt` on the gathered rows up
        to float rounding. Where the C kernel does not run (``step_kernel="eager"``, the
        ``"l2"`` distance, another device or dtype, :func:`torch.compile`): the gathered rows
        through :meth:`score_hrt`, as before the kernel."""
        if self.distance == "complex" and self.step_kernel != "eager":
            weights = x.new_ones(1, 1).expand(*candidates.shape, 1)
            hh, tt = gather_pair(x, h, t)
            queries = torch.cat([self._rotate(hh, r), self._rotate(tt, r, conjugate=True)])
            # triple i's query: row i (tail corrupted) or row B + i (head corrupted)
            which = torch.arange(len(h), device=h.device)[:, None] + len(h) * corrupt_head
            if kernel_applies(self.step_kernel, x, candidates, weights, queries, which):
                return self.margin - candidate_modulus(x, candidates, weights, queries, which,
                                                       self.step_kernel)
        return super().score_corruptions(x, h, r, t, corrupt_head, candidates)

    def _scores(self, q: Tensor, candidates: Tensor) -> Tensor:
        r""":math:`\gamma - D(q, c)` against every candidate; the complex kernel writes the
        scores in its own pass."""
        if self.distance == "l2":
            return self.margin - l2_distance(q, candidates)
        return complex_distance(q, candidates, kernel=self.kernel,
                                chunk_elements=self.chunk_elements, negate_from=self.margin)

    def score_t(self, h: Tensor, r: Tensor, candidates: Tensor) -> Tensor:
        return self._scores(self._rotate(h, r), candidates)

    def score_h(self, r: Tensor, t: Tensor, candidates: Tensor) -> Tensor:
        return self._scores(self._rotate(t, r, conjugate=True), candidates)

    def export_entities(self, x: Tensor) -> Tensor:
        """Complex entity embeddings :obj:`(N, d)`."""
        return as_complex(x)

    @torch.no_grad()
    def export_relations(self) -> dict[str, Any]:
        r"""Unit-modulus rotations :math:`e^{i\theta_r}` :obj:`(R, d)` (complex), ``p`` (1 for
        the paper's complex distance, 2 for ``l2``) and ``margin``."""
        phase = self.phase(torch.arange(self.num_relations,
                                        device=self.rel_emb.weight.device)).detach().cpu()
        return {"relation": torch.polar(torch.ones_like(phase), phase),
                "p": 1 if self.distance == "complex" else 2, "margin": self.margin}

    def extra_repr_args(self) -> str:
        args = [f"margin={self.margin}"]
        if self.distance != "complex":
            args.append(f"distance={self.distance!r}")
        if self.kernel != "auto":
            args.append(f"kernel={self.kernel!r}")
        if self.step_kernel != "auto":
            args.append(f"step_kernel={self.step_kernel!r}")
        return ", ".join(args)
