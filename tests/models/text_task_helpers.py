"""A tiny hybrid encoder (random 2-layer BERT and ViT of width 32) with MiniLM's tokenizer for
the RE / NER model tests, and sentences to feed it."""

from __future__ import annotations

import torch

from mmgnn.models.mkgformer_text import vision_stream
from mmgnn.nn.fusion.hybrid_encoder import HybridEncoder

WORDS = [["Bill", "Cosby", "visits", "the", "Hollywood", "Walk", "of", "Fame", "today"],
         ["RT", "@WLWT", ":", "Kawhi", "Leonard", "wins"],
         ["New", "York"]]


def tiny_encoder(vision: bool = True, seed: int = 0):
    """(HybridEncoder, tokenizer, text model): fusion in the last layer, one 16-pixel slot;
    the same ``seed`` gives the same text model with or without the vision tower."""
    from transformers import BertConfig, BertModel, ViTConfig, ViTModel

    from mmgnn.modalities.pretrained import default_text_encoder, load_tokenizer

    tokenizer = load_tokenizer(default_text_encoder())
    torch.manual_seed(seed)
    text_model = BertModel(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=160,
        attn_implementation="eager"), add_pooling_layer=False)
    with vision_stream():  # as load_hybrid_encoder: the global stream is the text-only one's
        tower = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=64, image_size=16, patch_size=8),
                         add_pooling_layer=False) if vision else None
        encoder = HybridEncoder(text_model, tower, 1 if vision else 0,
                                (16,) if vision else None)
    return encoder, tokenizer, text_model
