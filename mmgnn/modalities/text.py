"""Text features from any ``transformers`` encoder: entity names, descriptions, glosses, titles."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from mmgnn.modalities.base import Modality, ModalityFeatures, register_modality
from mmgnn.modalities.pretrained import (
    default_text_encoder,
    encoder_fingerprint,
    load_encoder,
    load_tokenizer,
)
from mmgnn.utils.progress import progress_bar

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG

POOLINGS = ("mean", "cls")
OUTPUTS = ("vector", "sequence")


def default_fields(kg: MultiModalKG) -> tuple[str, ...]:
    """The text fields of :class:`TextModality` when none are given: Wikidata
    ``label|name`` + ``description`` where labels exist (FB15k-237), else ``name`` +
    ``description`` (WordNet glosses), restricted to the kinds ``kg.texts`` has."""
    first = "label|name" if "label" in kg.texts else "name"
    fields = [f for f in (first, "description")
              if any(k in kg.texts for k in f.split("|"))]
    if not fields:
        raise ValueError(f"{kg.name}: no entity texts (kg.texts is empty); load the dataset "
                         f"with add_side_info=True or set kg.texts['name']")
    return tuple(fields)


def entity_texts(kg: MultiModalKG, fields: Sequence[str], sep: str = ", ") -> list[str | None]:
    """One string per entity: the present ``fields`` joined with ``sep``, :obj:`None` when
    every field is missing.

    A field is a text kind of ``kg.texts`` or alternatives ``a|b`` (the first present one):
    ``("label|name", "description")`` gives FB15k-237's "Wikidata label, description", with the
    Freebase name where Wikidata has no label.
    """
    columns = []
    for spec in fields:
        kinds = spec.split("|")
        missing = [k for k in kinds if k not in kg.texts]
        if len(missing) == len(kinds):
            raise ValueError(f"{kg.name}: text field {spec!r} names no text kind of the graph; "
                             f"available: {sorted(kg.texts)}")
        columns.append([kg.texts[k] for k in kinds if k in kg.texts])
    out: list[str | None] = []
    for i in range(kg.num_entities):
        parts = []
        for alternatives in columns:
            value = next((col[i] for col in alternatives if col[i]), None)
            if value:
                parts.append(value)
        out.append(sep.join(parts) if parts else None)
    return out


@torch.inference_mode()
def encode_texts(texts: Sequence[str | None], model: torch.nn.Module, tokenizer, *,
                 pooling: str = "mean", output: str = "vector", max_length: int = 128,
                 batch_size: int = 64, normalize: bool = False, progress: bool = True,
                 ) -> ModalityFeatures:
    r"""Encodes texts with a ``transformers`` encoder; :obj:`None` or empty texts are missing.

    Texts are tokenised in one call (truncated to ``max_length`` tokens, special tokens
    included), sorted by token count and run in batches padded to their longest member, so
    that little compute goes to padding; the rows are returned in the input order. With
    :math:`H \in \mathbb{R}^{L \times d}` the last hidden states of a text and :math:`m` its
    attention mask:

    .. math::
        \mathrm{mean}: \frac{\sum_l m_l H_l}{\sum_l m_l} \qquad \mathrm{cls}: H_0

    (mean pooling is Sentence-BERT's and all-MiniLM-L6-v2's; ``normalize`` divides by the L2
    norm, as its ``Normalize`` module does). ``output="sequence"`` keeps :math:`H` itself.

    Args:
        texts (list[str | None]): One text per entity.
        model (torch.nn.Module): A ``transformers`` encoder returning ``last_hidden_state``.
        tokenizer: Its tokenizer.
        pooling (str): ``mean`` or ``cls``. (default: ``mean``)
        output (str): ``vector`` (pooled) or ``sequence`` (token states). (default: ``vector``)
        max_length (int): Tokens per text, special tokens included. (default: :obj:`128`)
        batch_size (int): Texts per forward pass. (default: :obj:`64`)
        normalize (bool): L2-normalise pooled vectors. (default: :obj:`False`)
        progress (bool): Show a progress bar. (default: :obj:`True`)

    Shapes:
        - **output.x:** :obj:`(N, d)` for ``vector``; :obj:`(N, L, d)` for ``sequence`` with
          :math:`L` the longest tokenised text (memory :math:`N L d`), ``output.lengths``
          :obj:`(N,)` its token counts.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    n = len(texts)
    present = [i for i, t in enumerate(texts) if t is not None and t.strip()]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[present] = True
    device = next(model.parameters()).device
    dim = model.config.hidden_size
    ids = tokenizer([texts[i] for i in present], truncation=True, max_length=max_length,
                    add_special_tokens=True)["input_ids"] if present else []
    lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)
    order = torch.argsort(lengths, descending=True, stable=True).tolist()
    longest = int(lengths.max()) if present else 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if output == "vector":
        x = torch.zeros(n, dim)
    else:
        x = torch.zeros(n, max(longest, 1), dim)
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    for batch in progress_bar(batches, desc="encoding texts", disable=not progress,
                              leave=False):
        width = int(lengths[batch[0]])
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros(len(batch), width, dtype=torch.long)
        for row, k in enumerate(batch):
            input_ids[row, :len(ids[k])] = torch.tensor(ids[k])
            attention[row, :len(ids[k])] = 1
        hidden = model(input_ids=input_ids.to(device),
                       attention_mask=attention.to(device)).last_hidden_state.float().cpu()
        rows = torch.tensor([present[k] for k in batch])
        if output == "sequence":
            x[rows, :width] = hidden * attention[..., None]
            continue
        if pooling == "mean":
            m = attention[..., None].to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        else:
            pooled = hidden[:, 0]
        x[rows] = F.normalize(pooled, dim=-1) if normalize else pooled
    seq_lengths = None
    if output == "sequence":
        seq_lengths = torch.zeros(n, dtype=torch.long)
        seq_lengths[present] = lengths
    return ModalityFeatures(x, mask, seq_lengths, {"present": len(present)})


@register_modality("text")
class TextModality(Modality):
    r"""Text features of entities from a ``transformers`` encoder (:func:`encode_texts`).

    The raw data are the entity texts of ``kg.texts`` joined per :func:`entity_texts`
    (``fields``; by default :func:`default_fields`: Wikidata label + description for
    FB15k-237, lemma + gloss for WN18RR, the name elsewhere). Entities without any text are
    missing (mask :obj:`False`).

    Args:
        encoder (str or PathLike, optional): Hub id or local folder of the model. (default:
            :func:`~mmgnn.modalities.pretrained.default_text_encoder`, all-MiniLM-L6-v2)
        fields (list[str], optional): Text fields; ``a|b`` takes the first present.
        sep (str): Separator between fields. (default: ``", "``)
        pooling (str): ``mean`` or ``cls``. (default: ``mean``)
        output (str): ``vector`` or ``sequence``. (default: ``vector``)
        max_length (int): Tokens per text. (default: :obj:`128`)
        batch_size (int): Texts per forward pass. (default: :obj:`64`)
        normalize (bool): L2-normalise the pooled vectors. (default: :obj:`False`)
        device (str): Where the encoder runs. (default: ``cpu``)
        name (str, optional): Feature name. (default: ``text``)
    """

    def __init__(self, encoder: str | os.PathLike | None = None,
                 fields: Sequence[str] | str | None = None, sep: str = ", ",
                 pooling: str = "mean", output: str = "vector", max_length: int = 128,
                 batch_size: int = 64, normalize: bool = False, device: str = "cpu",
                 name: str | None = None) -> None:
        super().__init__(name)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.encoder = str(encoder) if encoder is not None else default_text_encoder()
        self.fields = tuple(fields.split(",")) if isinstance(fields, str) else (
            tuple(fields) if fields is not None else None)
        self.sep, self.pooling, self.output = sep, pooling, output
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        self.normalize, self.device = bool(normalize), device
        self._fingerprint: str | None = None

    def read(self, kg: MultiModalKG) -> list[str | None]:
        return entity_texts(kg, self.fields or default_fields(kg), self.sep)

    def settings(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = encoder_fingerprint(self.encoder)
        # batch_size and device do not change the features (up to float rounding).
        return {"encoder": self.encoder if not Path(self.encoder).is_dir()
                else str(Path(self.encoder).resolve()),
                "encoder_fingerprint": self._fingerprint, "fields": self.fields,
                "sep": self.sep, "pooling": self.pooling, "output": self.output,
                "max_length": self.max_length, "normalize": self.normalize}

    def encode(self, raw: list[str | None], progress: bool = True) -> ModalityFeatures:
        model = load_encoder(self.encoder, "text").to(self.device)
        tokenizer = load_tokenizer(self.encoder)
        out = encode_texts(raw, model, tokenizer, pooling=self.pooling, output=self.output,
                           max_length=self.max_length, batch_size=self.batch_size,
                           normalize=self.normalize, progress=progress)
        out.info["encoder"] = self.encoder
        return out

