"""Tiny randomly initialised transformers encoders, saved as local folders like real ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

WORDS = ("dominican republic country in the caribbean form of state american television "
         "series cat dog a an of , . - red blue small large animal plant city river").split()


def save_tiny_bert(folder: Path, vocab_words=WORDS, seed: int = 0) -> Path:
    """A 2-layer BERT of width 32 with a WordPiece vocabulary of ``vocab_words``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(vocab_words)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=37,
                        max_position_embeddings=64)
    BertModel(config).eval().save_pretrained(folder)
    return folder


def save_tiny_vit(folder: Path, seed: int = 0) -> Path:
    """A 1-layer ViT of width 16 on 32×32 images (4 patches of 16×16 + CLS)."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = ViTConfig(image_size=32, patch_size=16, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=24)
    ViTModel(config).eval().save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory) -> Path:
    return save_tiny_vit(tmp_path_factory.mktemp("tiny-vit"))
