"""A small multimodal baseline: entity embeddings fused with projected modality features."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from mmgnn.modalities.missing import FILL_STRATEGIES, MissingModalityFill
from mmgnn.modalities.store import ModalityStore, pool_vectors
from mmgnn.models.base import LinkPredictor
from mmgnn.nn.kge.base import KGEDecoder

MISSING = ("skip", *FILL_STRATEGIES)


class MultiModalKGE(LinkPredictor):
    r"""Structure embedding plus projected modality features, fused by a masked mean and
    scored by any :mod:`mmgnn.nn.kge` decoder.

    For entity :math:`i` with embedding :math:`\mathbf{E}_i`, features :math:`x_{i,m}` of
    modality :math:`m` (sequences are mean-pooled over their valid positions first) and
    presence :math:`a_{i,m} \in \{0, 1\}`:

    .. math::
        \mathbf{e}_i = \frac{\mathbf{E}_i + \sum_m w_{i,m}\, \mathbf{W}_m \tilde{x}_{i,m}}
                            {1 + \sum_m w_{i,m}},
        \qquad f(h, r, t) = \phi_r(\mathbf{e}_h, \mathbf{e}_t)

    With ``missing="skip"`` (the default) :math:`w_{i,m} = a_{i,m}` and
    :math:`\tilde{x} = x`: the mean runs over the modalities the entity has, and an entity
    without any is its structure embedding alone. With a fill strategy (``zeros``, ``mean``,
    ``learned``; :class:`~mmgnn.modalities.missing.MissingModalityFill`) every modality takes
    part, :math:`w_{i,m} = 1`, and absent features are replaced by the fill first.
    ``modality_dropout`` :math:`p` drops each (entity, modality) with probability :math:`p`
    at every training step (the training-time counterpart of the missing-modality settings
    of :mod:`mmgnn.eval.robustness`).

    The features are not parameters: the model's
    :class:`~mmgnn.modalities.ModalityStore` (``self.modalities``, sequences mean-pooled)
    holds them outside the ``state_dict`` (a checkpoint holds weights only) and
    :meth:`set_modality` replaces them, which is how
    :func:`mmgnn.eval.robustness.robustness_sweep` evaluates under corrupted features.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R`.
        modalities (ModalityStore): The entity features, :obj:`(N, d_m)` or
            :obj:`(N, L, d_m)` per modality, with masks and lengths (at least one modality).
        decoder (str or KGEDecoder): The scoring function, by name (built with ``dim`` and
            ``decoder_args``) or a decoder holding :math:`R` relations (:math:`2R` if
            ``reciprocal``). (default: ``distmult``)
        dim (int): Width of the decoder (complex decoders: complex dimensions).
            (default: :obj:`200`)
        reciprocal (bool): Answer head queries through inverse relations. (default: :obj:`False`)
        missing (str): ``skip``, ``zeros``, ``mean`` or ``learned``. (default: ``skip``)
        modality_dropout (float): Training-time drop probability. (default: :obj:`0.0`)
        **decoder_args: The decoder's own arguments when it is given by name.
    """

    regimes: ClassVar[tuple[str, ...]] = ("negative", "kvsall", "1vsall")
    needs_reciprocal: ClassVar[bool] = False
    needs_modalities: ClassVar[bool] = True
    default_modalities: ClassVar[tuple[str, ...]] = ("text",)
    fused_corruptions: ClassVar[bool] = True
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, num_entities: int, num_relations: int, modalities: ModalityStore,
                 decoder: str | KGEDecoder = "distmult", dim: int = 200,
                 reciprocal: bool = False, missing: str = "skip",
                 modality_dropout: float = 0.0, **decoder_args: Any) -> None:
        by_name = isinstance(decoder, str)
        super().__init__(num_entities, num_relations, decoder, reciprocal,
                         hidden_channels=dim if by_name else None,
                         decoder_kwargs=decoder_args if by_name else None)
        decoder = self.decoder
        if missing not in MISSING:
            raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        if modalities is None or not len(modalities):
            raise ValueError("MultiModalKGE needs at least one modality; attach features with "
                             "mmgnn.modalities (e.g. --modalities text) or use a KGE model")
        self.missing, self.modality_dropout = missing, float(modality_dropout)
        self.modalities = modalities.with_prepare(pool_vectors)
        width = decoder.entity_channels
        self.entity = torch.nn.Embedding(num_entities, width)
        self.projections = torch.nn.ModuleDict()
        self.fills = torch.nn.ModuleDict()
        for m in self.modality_names:
            d = self.modalities.width(m)
            self.projections[m] = torch.nn.Linear(d, width)
            if missing != "skip":
                self.fills[m] = MissingModalityFill(d, missing)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.decoder.reset_parameters()
        self.decoder.reset_entity_parameters(self.entity.weight)
        for proj in self.projections.values():
            torch.nn.init.xavier_uniform_(proj.weight)
            torch.nn.init.zeros_(proj.bias)
        for fill in self.fills.values():
            fill.reset_parameters()

    @property
    def modality_names(self) -> list[str]:
        """The modalities the model reads."""
        return self.modalities.names

    def set_modality(self, name: str, x: Tensor, mask: Tensor | None = None,
                     lengths: Tensor | None = None) -> None:
        """Replaces the features of modality ``name`` (same width as at construction);
        sequences :obj:`(N, L, d)` are pooled over ``lengths`` here, once."""
        if name not in self.modalities:
            raise KeyError(f"modality {name!r} is not one of this model's "
                           f"{self.modality_names}")
        self.modalities.set(name, x, mask, lengths)

    def modality(self, name: str) -> tuple[Tensor, Tensor, Tensor | None]:
        """The current ``(features, mask, lengths)`` of modality ``name``."""
        return self.modalities.get(name)

    def encode(self) -> Tensor:
        total = self.entity.weight
        count = torch.ones(self.num_entities, 1, device=total.device)
        for m in self.modality_names:
            x, mask, _ = self.modality(m)
            if self.training and self.modality_dropout:
                mask = mask & (torch.rand(len(mask), device=mask.device)
                               >= self.modality_dropout)
            if self.missing == "skip":
                weight = mask[:, None].to(total.dtype)
                total = total + self.projections[m](x) * weight
                count = count + weight
            else:
                total = total + self.projections[m](self.fills[m](x, mask))
                count = count + 1
        return total / count

    @torch.no_grad()
    def after_step(self) -> None:
        self.decoder.constrain_entities_(self.entity.weight)

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}={p.in_features}" for m, p in self.projections.items())
        extra = "".join([f", missing={self.missing!r}" if self.missing != "skip" else "",
                         f", modality_dropout={self.modality_dropout}"
                         if self.modality_dropout else "",
                         ", reciprocal=True" if self.reciprocal else ""])
        return (f"MultiModalKGE({self.num_entities}, modalities=[{mods}], "
                f"decoder={self.decoder!r}{extra})")
