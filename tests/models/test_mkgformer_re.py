"""MKGformerRE: entity markers where the released processor puts them, the head's formula
written out, images missing = the text model exactly, an image present reaches the vision
tower (the sample images end to end), the released optimiser's frozen classifier."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmgnn.models.mkgformer_re import MKGformerRE
from tests.models.text_task_helpers import WORDS, tiny_encoder

SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "sample_images"


def build(vision: bool = True, **kwargs) -> MKGformerRE:
    encoder, tokenizer, _ = tiny_encoder(vision)
    return MKGformerRE(5, encoder=encoder, tokenizer=tokenizer, **kwargs)


def test_markers_in_the_released_order(one_thread):
    model = build()
    m = model.marker_ids
    words = ["a", "b", "c", "d"]
    ids, (ps, po) = model.tokenize(words, (1, 2), (3, 4))
    tokens = model.tokenizer.convert_ids_to_tokens([i for i in ids if i < model.vocab_size])
    assert tokens == ["[CLS]", "a", "b", "c", "d", "[SEP]"]
    marks = [i for i in ids if i >= model.vocab_size]
    assert marks == [m["<s>"], m["</s>"], m["<o>"], m["</o>"]]
    assert ids[ps] == m["<s>"] and ids[po] == m["<o>"]
    # <s> right before 'b', </s> before 'c', <o> before 'd', </o> after the last word
    assert ids.index(m["<s>"]) == 2 and ids.index(m["</o>"]) == len(ids) - 2
    # nested spans: markers before the same word keep the order <s>, </s>, <o>, </o>
    ids, _ = model.tokenize(words, (1, 3), (1, 2))
    assert [i for i in ids if i >= model.vocab_size] == [m["<s>"], m["<o>"], m["</o>"],
                                                         m["</s>"]]


def test_truncation_error_names_the_sentence():
    model = build(max_length=4)
    with pytest.raises(ValueError, match="before its entity markers; raise max_length"):
        model.tokenize(["a", "b", "c", "d", "e"], (3, 4), (4, 5))


def test_forward_is_the_formula(one_thread):
    model = build().eval()
    b = model.batch(WORDS, torch.tensor([[0, 2], [3, 5], [0, 1]]),
                    torch.tensor([[4, 8], [1, 2], [1, 2]]))
    h = model.encoder(b.input_ids, b.attention_mask)
    rows = torch.arange(3)
    expected = model.classifier(torch.cat([h[rows, b.positions[:, 0]],
                                           h[rows, b.positions[:, 1]]], -1))
    assert torch.allclose(model(b), expected, atol=1e-6)
    assert (b.input_ids[rows, b.positions[:, 0]] == model.marker_ids["<s>"]).all()
    assert model(b).shape == (3, 5)


def test_missing_images_give_the_text_model_exactly(one_thread):
    encoder, tokenizer, _ = tiny_encoder(vision=True)
    hybrid = MKGformerRE(5, encoder=encoder, tokenizer=tokenizer).eval()
    plain_encoder, _, _ = tiny_encoder(vision=False)  # the same seed: the same text model
    plain = MKGformerRE(5, encoder=plain_encoder, tokenizer=tokenizer).eval()
    missing, unexpected = plain.load_state_dict(hybrid.state_dict(), strict=False)
    assert not missing and all("vision" in k or "caf" in k or "patch" in k or "pre_layernorm"
                               in k for k in unexpected)
    args = (WORDS, torch.tensor([[0, 2], [3, 5], [0, 1]]), torch.tensor([[4, 8], [1, 2], [1, 2]]))
    b = hybrid.batch(*args)
    assert b.image_rows is None  # masked: no example enters the vision stream
    assert torch.equal(hybrid(b), plain(plain.batch(*args)))
    # the released form: blank images the attention sees, which changes the output
    encoder, tokenizer, _ = tiny_encoder(vision=True)
    zeros = MKGformerRE(5, encoder=encoder, tokenizer=tokenizer, missing_images="zeros").eval()
    zeros.load_state_dict(hybrid.state_dict())
    bz = zeros.batch(*args)
    assert bz.image_rows.tolist() == [0, 1, 2]
    assert not torch.allclose(zeros(bz), hybrid(b))


def test_sample_image_reaches_the_vision_tower(one_thread, tmp_path):
    from mmgnn.data.mnre import read_mnre
    from mmgnn.modalities.example_images import load_example_images
    from mmgnn.train.text_tasks import example_images

    folder = SAMPLE / "fb15k"
    if not folder.is_dir():
        pytest.skip(f"sample images not found at {folder}")
    image = sorted(folder.glob("*/*.jpg"))[0].relative_to(folder).as_posix()
    rows = [{"token": WORDS[0], "h": {"name": "x", "pos": [0, 2]},
             "t": {"name": "y", "pos": [4, 8]}, "img_id": img, "relation": rel}
            for img, rel in ((image, "/per/loc/present_in"), ("absent.jpg", "None"))]
    path = tmp_path / "mnre_train.txt"
    path.write_text("".join(f"{r!r}\n" for r in rows))
    data = read_mnre(path)
    model = build()
    pixels = load_example_images(folder, data.images, model.image_size)
    assert list(pixels) == [image] and pixels[image].shape == (3, 16, 16)
    b = model.batch(data.tokens, data.head, data.tail, example_images(data.images, pixels))
    assert b.image_rows.tolist() == [0]
    model.loss(b, data.y).backward()
    vision = [p for n, p in model.named_parameters() if "vision_layers" in n]
    assert vision and all(p.grad is not None and p.grad.abs().sum() > 0 for p in vision)
    caf = [p for n, p in model.named_parameters() if "caf" in n]
    assert caf and all(p.grad.abs().sum() > 0 for p in caf)
    with pytest.raises(ValueError, match="cannot read the image"):
        (tmp_path / "bad.jpg").write_text("not an image")
        load_example_images(tmp_path, ["bad.jpg"], 16)


def test_released_optimiser_leaves_the_classifier_out():
    model = build(train_classifier=False)
    ids = {id(p) for p in model.param_groups()["model"]["params"]}
    assert not ids & {id(p) for p in model.classifier.parameters()}
    assert len(ids) == len(list(model.parameters())) - 2
    assert len(build().param_groups()["model"]["params"]) == len(list(build().parameters()))


def test_reset_parameters_redraws_head_and_markers():
    model = build()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.reset_parameters()
    after = model.state_dict()
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    words = "encoder.embeddings.word_embeddings.weight"
    assert torch.equal(before[words][:model.vocab_size], after[words][:model.vocab_size])
    assert not torch.equal(before[words][model.vocab_size:], after[words][model.vocab_size:])
    assert "MKGformerRE(num_labels=5" in repr(model)
