"""MKGformer's multimodal relation extraction head (``MRE/models/unimo_model.py``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgnn.models.mkgformer_text import HybridTextModel, TextBatch
from mmgnn.nn.fusion.hybrid_encoder import HybridEncoder

#: The entity markers, as the released processor adds them to the vocabulary.
MARKERS = ("<s>", "</s>", "<o>", "</o>")


class MKGformerRE(HybridTextModel):
    r"""Relation extraction with MKGformer's hybrid transformer (`Chen et al., SIGIR 2022
    <https://arxiv.org/abs/2205.02357>`_; spec ``MKGformer.md`` section 3; released
    ``MRE/models/unimo_model.py: UnimoREModel``).

    The sentence is read with entity markers around the head (``<s> ... </s>``) and the tail
    (``<o> ... </o>``), four new vocabulary tokens, then ``[CLS] ... [SEP]`` with at most
    ``max_length`` word pieces. With :math:`H` the :class:`~mmgnn.nn.fusion.HybridEncoder`'s
    text stream and :math:`p_s, p_o` the positions of ``<s>`` and ``<o>``:

    .. math::
        \mathbf{z} = W\,\mathrm{Dropout}\big([H_{p_s} \,\|\, H_{p_o}]\big) + \mathbf{b}
        \in \mathbb{R}^{C},\qquad
        \mathcal{L} = \mathrm{CE}(\mathbf{z}, y)

    The released forward builds the concatenation but never applies its ``dropout`` (0.5);
    the paper's head applies it, and so does this one (``dropout=0.0`` gives the released
    forward). The released optimiser holds only the parameters whose name contains
    ``model`` (the encoder): its classifier stays at its random initialisation;
    ``train_classifier=False`` reproduces that (:meth:`param_groups`), the default trains it.
    The released marker insertion leaves out a closing marker when its span ends the
    sentence; here every marker is written. Sequences longer than ``max_length`` are cut at
    the end; a cut that drops ``<s>`` or ``<o>`` is an error (the released code fails there
    too).

    Args:
        num_labels (int): :math:`C`, relation labels (``None`` included).
        text, vision, encoder, tokenizer, fusion_layers, image_size, patch_size,
            mask_prefix_padding, missing_images: The hybrid encoder and what a missing
            image becomes (see :class:`~mmgnn.models.mkgformer_text.HybridTextModel`).
            ``vision=None`` is the text-only model with the same head.
        max_length (int): Word pieces per sentence, ``[CLS]``/``[SEP]`` and markers
            included. (default: :obj:`80`, the released ``--max_seq``)
        dropout (float): Dropout on the concatenated marker states. (default: :obj:`0.5`)
        train_classifier (bool): Whether the optimiser updates the classifier.
            (default: :obj:`True`; the released run: :obj:`False`)

    Shapes:
        - **input:** a :class:`~mmgnn.models.mkgformer_text.TextBatch` whose ``positions``
          are :obj:`(B, 2)` the ``<s>`` and ``<o>`` positions (:meth:`batch`).
        - **output:** logits :obj:`(B, C)`.
    """

    #: The released recipe (``MRE/run_mre.sh``): 12 epochs, batch 32, AdamW lr 1e-5, weight
    #: decay 0.01, linear schedule with 6% warm-up.
    train_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "adamw", "lr": 1e-5, "weight_decay": 0.01, "batch_size": 32,
        "epochs": 12, "scheduler": "linear", "warmup_ratio": 0.06}

    def __init__(self, num_labels: int, text: str | os.PathLike | None = None,
                 vision: str | os.PathLike | None = None, *,
                 encoder: HybridEncoder | None = None, tokenizer: Any = None,
                 fusion_layers: int | None = None, image_size: int = 64, patch_size: int = 16,
                 mask_prefix_padding: bool = True, missing_images: str = "mask",
                 max_length: int = 80, dropout: float = 0.5,
                 train_classifier: bool = True) -> None:
        super().__init__(text, vision, encoder=encoder, tokenizer=tokenizer,
                         fusion_layers=fusion_layers, image_size=image_size,
                         patch_size=patch_size, mask_prefix_padding=mask_prefix_padding,
                         max_length=max_length, missing_images=missing_images,
                         extra_tokens=len(MARKERS))
        if num_labels < 2:
            raise ValueError(f"num_labels must be at least 2, got {num_labels}")
        self.num_labels, self.train_classifier = int(num_labels), bool(train_classifier)
        self.marker_ids = {m: self.vocab_size + k for k, m in enumerate(MARKERS)}
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(2 * self.hidden_channels, num_labels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.classifier.reset_parameters()

    def param_groups(self) -> dict[str, dict]:
        """The optimiser's parameters: all, or all but the classifier
        (``train_classifier=False``, as released)."""
        skip = set() if self.train_classifier else {id(p) for p in self.classifier.parameters()}
        return {"model": {"params": [p for p in self.parameters()
                                     if p.requires_grad and id(p) not in skip]}}

    def tokenize(self, words: Sequence[str], head: Sequence[int], tail: Sequence[int]
                 ) -> tuple[list[int], tuple[int, int]]:
        """Word-piece ids ``[CLS] ... <s> head </s> ... <o> tail </o> ... [SEP]`` of one
        sentence (markers placed before word :math:`i` in the released order ``<s>``,
        ``</s>``, ``<o>``, ``</o>``; closing markers after the last word when a span ends
        the sentence) and the positions of ``<s>`` and ``<o>``."""
        m = self.marker_ids
        before: dict[int, list[int]] = {}
        for pos, marker in ((head[0], "<s>"), (head[1], "</s>"), (tail[0], "<o>"),
                            (tail[1], "</o>")):
            before.setdefault(pos, []).append(m[marker])
        ids = [self._cls]
        for i, pieces in enumerate([*self.word_pieces(words), []]):
            ids += before.get(i, [])
            ids += pieces
        ids = ids[:self.max_length - 1] + [self._sep]
        try:
            return ids, (ids.index(m["<s>"]), ids.index(m["<o>"]))
        except ValueError:
            raise ValueError(f"the sentence {' '.join(words)[:80]!r} has more than "
                             f"{self.max_length} word pieces before its entity markers; "
                             f"raise max_length") from None

    def batch(self, tokens: Sequence[Sequence[str]], head: Tensor, tail: Tensor,
              images: Sequence[Tensor | None] | None = None) -> TextBatch:
        """The :class:`TextBatch` of sentences with head and tail word spans :obj:`(B, 2)`."""
        seqs, pos = zip(*(self.tokenize(w, h, t) for w, h, t in
                          zip(tokens, head.tolist(), tail.tolist(), strict=True)), strict=True)
        return self.collate(seqs, torch.tensor(pos, dtype=torch.long), images=images)

    def forward(self, batch: TextBatch) -> Tensor:
        h = self.hidden_states(batch)
        rows = torch.arange(h.size(0), device=h.device)
        pair = torch.cat([h[rows, batch.positions[:, 0]], h[rows, batch.positions[:, 1]]],
                         dim=-1)
        return self.classifier(self.dropout(pair))

    def loss(self, batch: TextBatch, y: Tensor) -> Tensor:
        """Mean cross-entropy of the batch's logits against labels ``y``."""
        return F.cross_entropy(self(batch), y)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_labels={self.num_labels}, encoder={self.encoder!r}, "
                f"max_length={self.max_length}, missing_images={self.missing_images!r})")
