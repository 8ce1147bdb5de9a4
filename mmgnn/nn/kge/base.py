"""The contract every KGE decoder (scoring function) in :mod:`mmgnn.nn.kge` follows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

# Elements of the largest (B, chunk, d) intermediate that a chunked 1-to-all scorer may build:
# 2**22 floats = 16 MiB, which keeps the working set near the CPU caches and the peak memory flat.
DEFAULT_CHUNK_ELEMENTS = 2**22


def chunked_one_to_all(block: Callable[[Tensor], Tensor], num_queries: int, candidates: Tensor,
                       chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> Tensor:
    r"""Runs ``block`` (candidates :obj:`(C, F)` :math:`\rightarrow` scores :obj:`(B, C)`) on
    slices of ``candidates`` whose :obj:`(B, C, F)` intermediate has at most ``chunk_elements``
    elements, and concatenates the score columns.

    When gradients are recorded, each slice runs under :func:`torch.utils.checkpoint.checkpoint`:
    autograd would otherwise keep every slice's intermediate alive until the backward pass, which
    adds up to the full :obj:`(B, N, F)` tensor the chunking exists to avoid. The slice is
    recomputed during the backward pass instead (one extra forward, bounded memory).

    Args:
        block (Callable): Scores of all queries against a slice of candidates.
        num_queries (int): :math:`B`.
        candidates (Tensor): :obj:`(N, F)`.
        chunk_elements (int): Bound on :math:`B \cdot C \cdot F`. (default: :obj:`2**22`)
    """
    width = max(candidates.size(-1), 1)
    chunk = max(1, chunk_elements // max(num_queries * width, 1))
    if chunk >= len(candidates):
        return block(candidates)
    if torch.is_grad_enabled():
        return torch.cat([checkpoint(block, c, use_reentrant=False)
                          for c in candidates.split(chunk)], dim=1)
    return torch.cat([block(c) for c in candidates.split(chunk)], dim=1)


def gather_pair(x: Tensor, h: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Rows ``x[h]`` and ``x[t]`` for index tensors of equal shape, in one gather.

    Through :func:`torch.nn.functional.embedding`, whose backward sorts the indices and sums
    repeated rows in one pass, where ``x[idx]`` scatters with atomic accumulation (several times
    slower with many negatives per positive); ``unbind``, not ``[0]`` / ``[1]``, because each
    select's backward zero-fills a buffer of the size of the whole gather.
    """
    return F.embedding(torch.stack([h, t]), x).unbind(0)


def as_complex(x: Tensor) -> Tensor:
    """The complex tensor of a real one laid out :obj:`[re | im]` on its last dimension
    (:obj:`(..., 2d)` :math:`\rightarrow` :obj:`(..., d)` complex)."""
    d = x.size(-1) // 2
    return torch.complex(x[..., :d].contiguous(), x[..., d:].contiguous())


class KGEDecoder(torch.nn.Module):
    r"""Base class of link-prediction heads.

    A decoder owns its **relation** parameters and scores **entity representations given from
    outside** (an embedding table, a GNN encoder or a fusion module), so it serves as the
    link-prediction head of any PyG model. Higher scores mean more plausible triples.

    Subclasses implement :meth:`score_hrt` and, where the model allows a faster form than the
    generic chunked one, :meth:`score_t` / :meth:`score_h` (a matrix product for bilinear models,
    :math:`\|q\|^2 + \|e\|^2 - 2 q \cdot e` for squared distances). No 1-to-all scorer ever
    materialises a :obj:`(B, N, d)` tensor: the generic path works on candidate chunks whose
    :obj:`(B, chunk, d)` intermediate stays under ``chunk_elements`` (checkpointed when
    gradients are recorded, so the backward pass is bounded too; see
    :func:`chunked_one_to_all`). Distances that are not a matrix product (L1, sums of complex
    moduli) have fused kernels in :mod:`mmgnn.nn.kge.distances`.

    Args:
        num_relations (int): Number of relations (include inverses if the model uses them).
        hidden_channels (int): Embedding size (complex models: number of complex dimensions).
        chunk_elements (int, optional): Bound on the elements of the intermediate of chunked
            1-to-all scoring. (default: :obj:`2**22`)

    Shapes:
        - **score_hrt:** heads :math:`(B, F)`, relations :math:`(B,)`, tails :math:`(B, F)`
          :math:`\rightarrow (B,)`, where :math:`F` is :attr:`entity_channels`.
        - **score_t:** heads :math:`(B, F)`, relations :math:`(B,)`, candidates :math:`(N, F)`
          :math:`\rightarrow (B, N)`.
        - **score_h:** relations :math:`(B,)`, tails :math:`(B, F)`, candidates :math:`(N, F)`
          :math:`\rightarrow (B, N)`.
        - **score_corruptions:** representations :math:`(|V|, F)`, ids ``h``, ``r``, ``t``
          :math:`(B,)`, ``corrupt_head`` and ``candidates`` :math:`(B, K)`
          :math:`\rightarrow (B, K)`.
        - **forward:** node features :math:`(|V|, F)`, edges :math:`(2, E)`, edge types
          :math:`(E,)` :math:`\rightarrow (E,)`.
    """

    def __init__(self, num_relations: int, hidden_channels: int,
                 chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> None:
        super().__init__()
        if num_relations <= 0 or hidden_channels <= 0:
            raise ValueError(
                f"{type(self).__name__} needs num_relations > 0 and hidden_channels > 0, got "
                f"{num_relations} and {hidden_channels}"
            )
        self.num_relations = num_relations
        self.hidden_channels = hidden_channels
        self.chunk_elements = chunk_elements

    # ------------------------------------------------------------ parameters
    @property
    def entity_channels(self) -> int:
        """Width of the entity representations this decoder scores (2 × hidden for complex)."""
        return self.hidden_channels

    def reset_parameters(self) -> None:
        """Resets the relation parameters to the paper's initialisation."""
        raise NotImplementedError

    @torch.no_grad()
    def reset_entity_parameters(self, weight: Tensor) -> None:
        """Initialises an entity embedding table the way the decoder's paper does."""
        torch.nn.init.xavier_uniform_(weight)

    @torch.no_grad()
    def constrain_entities_(self, weight: Tensor) -> None:
        """Applies the paper's constraint to an entity table after each step (default: none)."""

    def factors(self, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        """Per-dimension magnitudes of the factors of each triple, for N3-style regularisation
        (Lacroix et al., 2018). Decoders without a meaningful regulariser return ``[]``."""
        return []

    # ---------------------------------------------------------------- export
    def export_entities(self, x: Tensor) -> Tensor:
        """Entity representations :obj:`(N, F)` in the form of the decoder's paper (the rows
        themselves by default; complex decoders: complex :obj:`(N, d)`)."""
        return x

    @torch.no_grad()
    def export_relations(self) -> dict[str, Any]:
        """The decoder's relation parameters in the form of its paper, for
        :func:`~mmgnn.models.export.export_embeddings`: ``relation`` :obj:`(R, ...)` (all
        :attr:`num_relations`, inverses included) on the CPU, ``p`` the norm of a distance
        decoder (:obj:`None` otherwise), and any other tensor or constant the score needs
        (``core``, ``margin``). The default exports a ``rel_emb`` table as it is."""
        rel = getattr(self, "rel_emb", None)
        if not isinstance(rel, torch.nn.Embedding):
            raise NotImplementedError(f"{type(self).__name__} holds no relation table to "
                                      f"export (no rel_emb); override export_relations")
        return {"relation": rel.weight.detach().cpu().float(), "p": None}

    # --------------------------------------------------------------- scoring
    def score_hrt(self, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        """Scores of the triples ``(h[i], r[i], t[i])``: :obj:`(B,)`.

        Must broadcast over leading dimensions (``h`` :obj:`(B, 1, F)`, ``r`` :obj:`(B, 1)`,
        ``t`` :obj:`(1, C, F)` gives :obj:`(B, C)`): the generic chunked 1-to-all scorers rely
        on it.
        """
        raise NotImplementedError

    def score_corruptions(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor,
                          corrupt_head: Tensor, candidates: Tensor) -> Tensor:
        r"""Scores :obj:`(B, K)` of :math:`K` corruptions of each triple ``(h[i], r[i], t[i])``
        (entity ids into the representations ``x``): corruption ``(i, k)`` replaces the head by
        ``candidates[i, k]`` where ``corrupt_head[i, k]``, else the tail.

        This is the negative-sampling training step's scoring; the default gathers both sides
        of every corruption and calls :meth:`score_hrt`. Decoders with a cheaper form override
        it (TransE-L1: one gathered L1 distance per corruption, no :obj:`(B, K, F)`
        intermediates).
        """
        heads = torch.where(corrupt_head, candidates, h[:, None])
        tails = torch.where(corrupt_head, t[:, None], candidates)
        hh, tt = gather_pair(x, heads, tails)
        return self.score_hrt(hh, r[:, None], tt)

    def score_t(self, h: Tensor, r: Tensor, candidates: Tensor) -> Tensor:
        """Scores of ``(h[i], r[i], candidates[j])`` for every query ``i`` and candidate ``j``."""
        return self._chunked(lambda c: self.score_hrt(h[:, None], r[:, None], c[None]),
                             len(h), candidates)

    def score_h(self, r: Tensor, t: Tensor, candidates: Tensor) -> Tensor:
        """Scores of ``(candidates[j], r[i], t[i])`` for every query ``i`` and candidate ``j``."""
        return self._chunked(lambda c: self.score_hrt(c[None], r[:, None], t[:, None]),
                             len(t), candidates)

    def forward(self, x: Tensor, edge_index: Tensor, edge_type: Tensor) -> Tensor:
        """Scores the edges of a PyG graph: edge ``(src, dst)`` of type ``r`` is the triple
        ``(x[src], r, x[dst])``."""
        return self.score_hrt(x[edge_index[0]], edge_type, x[edge_index[1]])

    def _chunked(self, block: Callable[[Tensor], Tensor], num_queries: int,
                 candidates: Tensor) -> Tensor:
        """Runs ``block`` on slices of ``candidates`` small enough for the memory bound (see
        :func:`chunked_one_to_all`)."""
        return chunked_one_to_all(block, num_queries, candidates, self.chunk_elements)

    def extra_repr_args(self) -> str:
        """Extra ``key=value`` pairs for ``repr`` (e.g. ``p_norm=1``)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr_args()
        return (f"{type(self).__name__}(num_relations={self.num_relations}, "
                f"hidden_channels={self.hidden_channels}{', ' + extra if extra else ''})")
