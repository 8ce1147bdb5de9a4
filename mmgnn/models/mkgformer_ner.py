"""MKGformer's multimodal NER head with a CRF (``MNER/models/unimo_model.py``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from mmgnn.models.mkgformer_text import HybridTextModel, TextBatch
from mmgnn.nn.fusion.hybrid_encoder import HybridEncoder

#: Where the CRF runs: over the first word piece of each word, or over every word piece.
CRF_OVER = ("word", "wordpiece")
#: The extra labels of the released word-piece CRF (``MNER/run.py: LABEL_LIST``): ``PAD``
#: (id 0), then the tags, then these three.
PIECE_LABELS = ("X", "[CLS]", "[SEP]")


class MKGformerNER(HybridTextModel):
    r"""Named-entity recognition with MKGformer's hybrid transformer and a linear-chain CRF
    (`Chen et al., SIGIR 2022 <https://arxiv.org/abs/2205.02357>`_; spec
    ``MKGformer.md`` section 3; released ``MNER/models/unimo_model.py: UnimoCRFModel``).

    With :math:`H` the :class:`~mmgnn.nn.fusion.HybridEncoder`'s text stream, emissions
    :math:`E = W\,\mathrm{Dropout}(H) + \mathbf{b}` and a CRF with transition scores
    :math:`A` and start / end scores :math:`\pi, \omega` (``torchcrf.CRF``, the package the
    released code uses), a tag path :math:`y_{1..n}` scores

    .. math::
        s(y) = \pi_{y_1} + \sum_{i=1}^{n} E_{i, y_i} + \sum_{i=2}^{n} A_{y_{i-1}, y_i}
        + \omega_{y_n},\qquad
        \mathcal{L} = -\frac{1}{B}\sum_b \Big(s(y^{(b)}) - \log\sum_{y'} e^{s(y')}\Big)

    (the mean negative log-likelihood, as released); prediction is the Viterbi path.

    ``crf_over="word"`` (default): the CRF runs over the words, each represented by its
    first word piece, with the BIO tags as its labels; words cut off by ``max_length`` are
    predicted ``O``. ``crf_over="wordpiece"`` is the released form: the CRF runs over every
    word piece of ``[CLS] ... [SEP]`` with ``len(tags) + 4`` labels (``PAD`` = 0, the tags,
    ``X`` for a non-first piece, ``[CLS]``, ``[SEP]``) and the word's tag is read at its
    first piece (a predicted ``X`` / ``[CLS]`` / ``[SEP]`` / ``PAD`` there counts as ``O``).
    The released trainer gives the CRF and the linear layer their own learning rate
    (``--crf_lr`` 5e-2); ``head_lr`` sets it here (:meth:`param_groups`).

    Args:
        num_tags (int): BIO tags (``O`` is tag 0).
        text, vision, encoder, tokenizer, fusion_layers, image_size, patch_size,
            mask_prefix_padding, missing_images: The hybrid encoder and what a missing
            image becomes (see :class:`~mmgnn.models.mkgformer_text.HybridTextModel`).
        max_length (int): Word pieces per sentence with ``[CLS]`` and ``[SEP]``.
            (default: :obj:`128`, the released ``--max_seq``)
        dropout (float): Dropout before the emission layer. (default: :obj:`0.1`)
        crf_over (str): ``word`` or ``wordpiece`` (released). (default: ``word``)
        head_lr (float, optional): Learning rate of the CRF and the emission layer.
            (default: the run's; released: :obj:`5e-2`)

    Shapes:
        - **input:** a :class:`~mmgnn.models.mkgformer_text.TextBatch` (:meth:`batch`).
        - **output:** emissions :obj:`(B, W, T)` (words) or :obj:`(B, L, T + 4)` (pieces).
    """

    #: The released recipe (``MNER/run_mner.sh``, Twitter-2017): 30 epochs, batch 16, AdamW
    #: lr 3e-5 (CRF and emission layer 5e-2), weight decay 0.01, 1% linear warm-up.
    train_defaults: ClassVar[dict[str, Any]] = {
        "optimizer": "adamw", "lr": 3e-5, "weight_decay": 0.01, "batch_size": 16,
        "epochs": 30, "scheduler": "linear", "warmup_ratio": 0.01}

    def __init__(self, num_tags: int, text: str | os.PathLike | None = None,
                 vision: str | os.PathLike | None = None, *,
                 encoder: HybridEncoder | None = None, tokenizer: Any = None,
                 fusion_layers: int | None = None, image_size: int = 64, patch_size: int = 16,
                 mask_prefix_padding: bool = True, missing_images: str = "mask",
                 max_length: int = 128, dropout: float = 0.1, crf_over: str = "word",
                 head_lr: float | None = None) -> None:
        from torchcrf import CRF

        super().__init__(text, vision, encoder=encoder, tokenizer=tokenizer,
                         fusion_layers=fusion_layers, image_size=image_size,
                         patch_size=patch_size, mask_prefix_padding=mask_prefix_padding,
                         max_length=max_length, missing_images=missing_images)
        if crf_over not in CRF_OVER:
            raise ValueError(f"crf_over must be one of {CRF_OVER}, got {crf_over!r}")
        if num_tags < 2:
            raise ValueError(f"num_tags must be at least 2, got {num_tags}")
        self.num_tags, self.crf_over, self.head_lr = int(num_tags), crf_over, head_lr
        self.num_labels = num_tags + (1 + len(PIECE_LABELS) if crf_over == "wordpiece" else 0)
        self.dropout = torch.nn.Dropout(dropout)
        self.fc = torch.nn.Linear(self.hidden_channels, self.num_labels)
        self.crf = CRF(self.num_labels, batch_first=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.fc.reset_parameters()
        self.crf.reset_parameters()

    def param_groups(self) -> dict[str, dict]:
        """The encoder's parameters, and the CRF's and emission layer's (at ``head_lr``
        when given)."""
        head = [*self.fc.parameters(), *self.crf.parameters()]
        ids = {id(p) for p in head}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        lr = {} if self.head_lr is None else {"lr": self.head_lr}
        return {"model": {"params": [{"params": rest}, {"params": head, **lr}]}}

    # ----------------------------------------------------------------- inputs
    def tokenize(self, words: Sequence[str]) -> tuple[list[int], list[int]]:
        """Word-piece ids ``[CLS] ... [SEP]`` (at most ``max_length``) and the position of
        each word's first piece (only the words that fit)."""
        ids, first = [self._cls], []
        for pieces in self.word_pieces(words):
            if len(ids) + len(pieces) > self.max_length - 1:
                ids += pieces[:self.max_length - 1 - len(ids)]
                break
            first.append(len(ids))
            ids += pieces
        return ids + [self._sep], first

    def batch(self, tokens: Sequence[Sequence[str]],
              images: Sequence[Tensor | None] | None = None) -> TextBatch:
        """The :class:`TextBatch` of sentences: ``positions`` :obj:`(B, W)` the first piece
        of each word that fits (``position_mask`` marks them), :math:`W` the longest."""
        seqs, firsts = zip(*(self.tokenize(w) for w in tokens), strict=True)
        width = max(len(w) for w in tokens)
        pos = torch.zeros(len(seqs), width, dtype=torch.long)
        mask = torch.zeros(len(seqs), width, dtype=torch.bool)
        for i, f in enumerate(firsts):
            pos[i, :len(f)] = torch.tensor(f, dtype=torch.long)
            mask[i, :len(f)] = True
        return self.collate(seqs, pos, mask, images)

    def piece_labels(self, batch: TextBatch, tags: Sequence[Tensor]) -> Tensor:
        """The released word-piece labels :obj:`(B, L)`: ``[CLS]``, the tag + 1 at a word's
        first piece, ``X`` at its other pieces, ``[SEP]``, ``PAD`` (0) after."""
        t = self.num_tags
        x, cls, sep = t + 1, t + 2, t + 3
        labels = torch.zeros_like(batch.input_ids)
        lengths = batch.attention_mask.sum(1).tolist()
        for i, (n, tag) in enumerate(zip(lengths, tags, strict=True)):
            labels[i, 1:n - 1] = x
            labels[i, 0], labels[i, n - 1] = cls, sep
            k = int(batch.position_mask[i].sum())
            labels[i, batch.positions[i, :k]] = tag[:k].to(labels.device) + 1
        return labels

    # ---------------------------------------------------------------- scoring
    def forward(self, batch: TextBatch) -> Tensor:
        emissions = self.fc(self.dropout(self.hidden_states(batch)))
        if self.crf_over == "wordpiece":
            return emissions
        rows = torch.arange(emissions.size(0), device=emissions.device)[:, None]
        return emissions[rows, batch.positions]

    def _crf_inputs(self, batch: TextBatch, tags: Sequence[Tensor] | None
                    ) -> tuple[Tensor, Tensor | None]:
        if self.crf_over == "wordpiece":
            return batch.attention_mask.bool(), (self.piece_labels(batch, tags)
                                                 if tags is not None else None)
        if tags is None:
            return batch.position_mask, None
        gold = torch.zeros(batch.positions.shape, dtype=torch.long)
        for i, tag in enumerate(tags):
            k = int(batch.position_mask[i].sum())
            gold[i, :k] = tag[:k]
        return batch.position_mask, gold.to(batch.positions.device)

    def log_likelihood(self, batch: TextBatch, tags: Sequence[Tensor]) -> Tensor:
        """The CRF log-likelihood of the gold tags, one per sentence :obj:`(B,)`."""
        mask, gold = self._crf_inputs(batch, tags)
        return self.crf(self(batch), gold, mask=mask, reduction="none")

    def loss(self, batch: TextBatch, tags: Sequence[Tensor]) -> Tensor:
        """The mean negative CRF log-likelihood of the batch (as released)."""
        return -self.log_likelihood(batch, tags).mean()

    @torch.no_grad()
    def predict(self, batch: TextBatch, lengths: Sequence[int]) -> list[list[int]]:
        """The Viterbi tag ids of every word (``lengths``: words per sentence); words past
        ``max_length`` and non-tag labels of the word-piece CRF are ``O`` (0)."""
        mask, _ = self._crf_inputs(batch, None)
        paths = self.crf.decode(self(batch), mask=mask)
        out = []
        for i, (path, n) in enumerate(zip(paths, lengths, strict=True)):
            k = int(batch.position_mask[i].sum())
            if self.crf_over == "wordpiece":
                words = [path[p] - 1 for p in batch.positions[i, :k].tolist()]
                words = [t if 0 <= t < self.num_tags else 0 for t in words]
            else:
                words = list(path[:k])
            out.append(words + [0] * (n - k))
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_tags={self.num_tags}, encoder={self.encoder!r}, "
                f"crf_over={self.crf_over!r}, max_length={self.max_length}, "
                f"missing_images={self.missing_images!r})")
