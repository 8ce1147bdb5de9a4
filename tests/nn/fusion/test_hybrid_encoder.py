import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    ViTConfig,
    ViTModel,
)

from mmgnn.nn.fusion import HybridEncoder
from mmgnn.nn.fusion.hybrid_encoder import _VisionLayer, default_image_sizes

TINY = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32)


def tiny_towers(vocab_size: int = 50, vision: str = "vit", seed: int = 0):
    """A random 3-layer BERT and a random 3-layer ViT (or CLIP tower) of width 16."""
    torch.manual_seed(seed)
    text = BertModel(BertConfig(vocab_size=vocab_size, max_position_embeddings=64, **TINY),
                     add_pooling_layer=False)
    if vision == "vit":
        tower = ViTModel(ViTConfig(image_size=16, patch_size=4, **TINY), add_pooling_layer=False)
    else:
        tower = CLIPVisionModel(CLIPVisionConfig(image_size=16, patch_size=4, **TINY))
    return text.eval(), tower.eval()


def inputs(b=3, n=7, vocab=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (b, n), generator=g)
    mask = torch.ones(b, n, dtype=torch.long)
    mask[1, 5:] = 0
    ids[1, 5:] = 0
    return ids, mask


def test_default_image_sizes_match_the_released_layout():
    sizes = default_image_sizes(224, 32)
    assert sizes == (224, 128, 128, 128, 64, 64, 64)
    assert sum((s // 32) ** 2 for s in sizes) == 109  # spec: 49 + 48 + 12 visual tokens
    assert default_image_sizes(16, 4, 3) == (16, 8, 8)


def test_text_stream_without_fusion_equals_the_text_model():
    text, tower = tiny_towers()
    ids, mask = inputs()
    expected = text(input_ids=ids, attention_mask=mask).last_hidden_state
    for enc in (HybridEncoder(text).eval(), HybridEncoder(text, tower, fusion_layers=0).eval()):
        with torch.no_grad():
            got = enc(ids, mask)
        torch.testing.assert_close(got[mask.bool()], expected[mask.bool()], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("vision", ["vit", "clip"])
def test_vision_layer_adapter_equals_the_pretrained_layer(vision):
    _, tower = tiny_towers(vision=vision)
    layer = tower.layers[0] if vision == "vit" else tower.encoder.layers[0]
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        expected = layer(x) if vision == "vit" else layer(x, None)
        expected = expected[0] if isinstance(expected, tuple) else expected
        got = _VisionLayer(layer, 2, 0.0).eval()(x, None, None, None, torch.ones(2, 5).bool())
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("vision", ["vit", "clip"])
def test_fusion_uses_images_and_masks_absent_ones(vision):
    text, tower = tiny_towers(vision=vision)
    enc = HybridEncoder(text, tower, fusion_layers=2).eval()
    assert enc.tokens_per_image == [16, 4, 4, 4, 1, 1, 1]
    torch.nn.init.normal_(enc.text_layers[-1].caf.fusion_dense.weight, std=0.5)
    ids, mask = inputs()
    pixels = [torch.randn(2, 3, s, s) for s in enc.image_sizes]
    image_mask = torch.zeros(2, 7, dtype=torch.bool)
    image_mask[0, :3] = True
    image_mask[1, 0] = True
    rows = torch.tensor([0, 2])  # sample 1 has no image
    with torch.no_grad():
        plain = enc(ids, mask)
        fused = enc(ids, mask, pixels, image_mask, rows)
        # Samples without images are encoded by the plain text model.
        torch.testing.assert_close(fused[1], plain[1])
        assert not torch.allclose(fused[0], plain[0], atol=1e-4)
        assert not torch.allclose(fused[2], plain[2], atol=1e-4)
        # Absent image slots are never seen: changing their pixels changes nothing.
        other = [p.clone() for p in pixels]
        for k in range(3, 7):
            other[k][0] = 1e3
        for k in range(1, 7):
            other[k][1] = -1e3
        torch.testing.assert_close(enc(ids, mask, other, image_mask, rows), fused)
        other[1][0] = 5.0  # a present image does change the output
        assert not torch.allclose(enc(ids, mask, other, image_mask, rows)[0], fused[0])


def test_fusion_gradients_reach_both_towers():
    text, tower = tiny_towers()
    enc = HybridEncoder(text, tower, fusion_layers=2).train()
    ids, mask = inputs()
    pixels = [torch.randn(3, 3, s, s) for s in enc.image_sizes]
    out = enc(ids, mask, pixels, torch.ones(3, 7, dtype=torch.bool), torch.arange(3))
    out.sum().backward()
    named = dict(enc.named_parameters())
    for name in ("patch_embedding.weight", "vision_layers.1.pgi.q.weight",
                 "text_layers.2.caf.fusion_dense.weight", "embeddings.word_embeddings.weight"):
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name


def test_bad_towers_are_rejected_with_a_clear_error():
    text, _ = tiny_towers()
    wide = ViTModel(ViTConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=3,
                              num_attention_heads=2, intermediate_size=32))
    with pytest.raises(ValueError, match="lock-step"):
        HybridEncoder(text, wide, fusion_layers=1)
    with pytest.raises(ValueError, match="fusion_layers"):
        HybridEncoder(text, tiny_towers()[1], fusion_layers=3)
    with pytest.raises(ValueError, match="vision_model"):
        HybridEncoder(text, None, fusion_layers=1)
    assert repr(HybridEncoder(text, tiny_towers()[1], fusion_layers=1)) == (
        "HybridEncoder(layers=3, hidden_channels=16, heads=2, fusion_layers=1, "
        "image_sizes=[16, 8, 8, 8, 4, 4, 4])")


def test_lock_step_matches_a_layer_by_layer_reference():
    """M = 1: the first L-1 layers are the pretrained layers, then the last vision layer
    attends over [keys/values of text layer L-2 ; its own] and the last text layer adds
    W_F softmax(C V^T) V to its FFN, written out here with the towers' own weights."""
    text, tower = tiny_towers(seed=3)
    enc = HybridEncoder(text, tower, fusion_layers=1, image_sizes=(16, 8)).eval()
    torch.nn.init.normal_(enc.text_layers[-1].caf.fusion_dense.weight, std=0.3)
    ids = torch.randint(1, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 6, dtype=torch.long)
    pixels = [torch.randn(2, 3, 16, 16), torch.randn(2, 3, 8, 8)]
    image_mask = torch.ones(2, 2, dtype=torch.bool)

    def heads(x):  # (B, L, 16) -> (B, 2, L, 8)
        return x.view(x.size(0), x.size(1), 2, 8).transpose(1, 2)

    def attend(q, k, v):
        w = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / 8 ** 0.5, dim=-1)
        return (w @ heads(v)).transpose(1, 2).reshape(q.shape[0], q.shape[1], 16)

    with torch.no_grad():
        got = enc(ids, mask, pixels, image_mask, torch.arange(2))
        h = text.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        conv = tower.embeddings.patch_embeddings.projection
        v = torch.cat([conv(p).flatten(2).transpose(1, 2) for p in pixels], dim=1)
        for i in range(2):
            h_in = h
            h = text.encoder.layer[i](h)
            h = h[0] if isinstance(h, tuple) else h
            v = tower.layers[i](v)
        below = text.encoder.layer[1].attention.self
        k_t, v_t = below.key(h_in), below.value(h_in)
        vl = tower.layers[2]
        y = vl.layernorm_before(v)
        a = vl.attention
        v = v + a.o_proj(attend(a.q_proj(y), torch.cat([k_t, a.k_proj(y)], 1),
                                torch.cat([v_t, a.v_proj(y)], 1)))
        v = v + vl.mlp(vl.layernorm_after(v))
        tl = text.encoder.layer[2]
        sa = tl.attention.self
        context = attend(sa.query(h), sa.key(h), sa.value(h))
        att = tl.attention.output(context, h)
        agg = torch.softmax(context @ v.transpose(1, 2), dim=-1) @ v
        fusion = enc.text_layers[2].caf.fusion_dense
        expected = tl.output(torch.nn.functional.gelu(tl.intermediate.dense(att) + fusion(agg)),
                             att)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
