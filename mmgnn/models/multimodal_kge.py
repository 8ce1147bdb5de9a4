"""A small multimodal baseline: entity embeddings fused with projected modality features."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mmgnn.modalities.base import entity_features, graph_features
from mmgnn.modalities.missing import FILL_STRATEGIES, MissingModalityFill
from mmgnn.models.base import LinkPredictor
from mmgnn.nn.kge.base import KGEDecoder

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG
    from mmgnn.train.config import TrainConfig

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

    The features are not parameters: they are buffers outside the ``state_dict`` (a
    checkpoint holds weights only) and :meth:`set_modality` replaces them, which is how
    :func:`mmgnn.eval.robustness.robustness_sweep` evaluates under corrupted features.

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R`.
        decoder (KGEDecoder): The scoring function (:math:`2R` relations if ``reciprocal``).
        features (dict[str, Tensor]): :obj:`(N, d_m)` or :obj:`(N, L, d_m)` per modality.
        masks (dict[str, Tensor], optional): :obj:`(N,)` presence per modality. (default:
            all present)
        lengths (dict[str, Tensor], optional): :obj:`(N,)` valid lengths of sequences.
        reciprocal (bool): Answer head queries through inverse relations. (default: :obj:`False`)
        missing (str): ``skip``, ``zeros``, ``mean`` or ``learned``. (default: ``skip``)
        modality_dropout (float): Training-time drop probability. (default: :obj:`0.0`)
    """

    def __init__(self, num_entities: int, num_relations: int, decoder: KGEDecoder,
                 features: dict[str, Tensor], masks: dict[str, Tensor] | None = None,
                 lengths: dict[str, Tensor] | None = None, reciprocal: bool = False,
                 missing: str = "skip", modality_dropout: float = 0.0) -> None:
        super().__init__(num_entities, num_relations, decoder, reciprocal)
        if missing not in MISSING:
            raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        if not features:
            raise ValueError("MultiModalKGE needs at least one modality; attach features with "
                             "mmgnn.modalities (e.g. --modalities text) or use a KGE model")
        self.missing, self.modality_dropout = missing, float(modality_dropout)
        self.modality_names = list(features)
        width = decoder.entity_channels
        self.entity = torch.nn.Embedding(num_entities, width)
        self.projections = torch.nn.ModuleDict()
        self.fills = torch.nn.ModuleDict()
        for m, x in features.items():
            self.projections[m] = torch.nn.Linear(x.size(-1), width)
            if missing != "skip":
                self.fills[m] = MissingModalityFill(x.size(-1), missing)
            self.set_modality(m, x, (masks or {}).get(m), (lengths or {}).get(m))
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: TrainConfig, kg: MultiModalKG) -> MultiModalKGE:
        """The model of a :class:`~mmgnn.train.TrainConfig` with ``model="multimodal"``:
        ``model_args`` may set ``decoder`` (default ``distmult``), ``missing``,
        ``modality_dropout`` and the decoder's own arguments; the modalities are
        ``config.modalities`` (default: every modality of ``kg``)."""
        from mmgnn.nn.kge import build_decoder

        args = dict(config.model_args)
        decoder_name = args.pop("decoder", "distmult")
        own = {k: args.pop(k) for k in ("missing", "modality_dropout") if k in args}
        inputs = graph_features(kg, config.modalities, "the multimodal model", required=True)
        num_rel = kg.num_relations * (2 if config.reciprocal else 1)
        decoder = build_decoder(decoder_name, num_rel, config.dim, **args)
        return cls(kg.num_entities, kg.num_relations, decoder, *inputs,
                   reciprocal=config.reciprocal, **own)

    def reset_parameters(self) -> None:
        self.decoder.reset_parameters()
        self.decoder.reset_entity_parameters(self.entity.weight)
        for proj in self.projections.values():
            torch.nn.init.xavier_uniform_(proj.weight)
            torch.nn.init.zeros_(proj.bias)
        for fill in self.fills.values():
            fill.reset_parameters()

    def set_modality(self, name: str, x: Tensor, mask: Tensor | None = None,
                     lengths: Tensor | None = None) -> None:
        """Replaces the features of modality ``name`` (same width as at construction);
        sequences :obj:`(N, L, d)` are pooled over ``lengths`` here, once."""
        if name not in self.projections:
            raise KeyError(f"modality {name!r} is not one of this model's "
                           f"{self.modality_names}")
        x, mask = entity_features(name, x, mask, lengths, self.num_entities,
                                  self.projections[name].in_features)
        device = self.entity.weight.device if hasattr(self, "entity") else x.device
        self.register_buffer(f"x_{name}", x.to(device), persistent=False)
        self.register_buffer(f"mask_{name}", mask.to(device, torch.bool), persistent=False)

    def modality(self, name: str) -> tuple[Tensor, Tensor]:
        """The current ``(features, mask)`` of modality ``name``."""
        return getattr(self, f"x_{name}"), getattr(self, f"mask_{name}")

    def encode(self) -> Tensor:
        total = self.entity.weight
        count = torch.ones(self.num_entities, 1, device=total.device)
        for m in self.modality_names:
            x, mask = self.modality(m)
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
