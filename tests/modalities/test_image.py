"""Image features of the real sample images against a direct transformers call."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel

from mmgnn.data import MultiModalKG
from mmgnn.modalities import ImageModality, list_entity_images
from mmgnn.modalities.image import image_folder_name


def _kg(names):
    empty = torch.zeros(0, 3, dtype=torch.long)
    return MultiModalKG(list(names), ["r"], empty, empty, empty, name="img")


def _direct(folder, files):
    """Each image alone: PIL → processor → model; CLS vectors (k, d)."""
    processor = AutoImageProcessor.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for f in files:
            pixels = processor(images=Image.open(f).convert("RGB"), return_tensors="pt")
            out.append(model(**pixels).last_hidden_state[0, 0])
    return torch.stack(out)


def test_folder_names():
    assert image_folder_name("/m/0_jm") == "m.0_jm"
    assert image_folder_name("01945845") == "n01945845"


def test_fb15k_sample_images_mean_of_cls(data_root, tiny_vit):
    folder = data_root / "sample_images" / "fb15k"
    mids = sorted(p.name for p in folder.iterdir())
    names = ["/" + m.replace(".", "/") for m in mids] + ["/m/no_images"]
    feats = ImageModality(folder=folder, encoder=tiny_vit, batch_size=7).build(
        _kg(names), cache=False, progress=False)
    assert feats.mask.tolist() == [True] * len(mids) + [False]
    assert feats.info["images"] == sum(len(list((folder / m).iterdir())) for m in mids)
    for i, m in enumerate(mids[:4]):
        files = sorted((folder / m).iterdir())
        torch.testing.assert_close(feats.x[i], _direct(tiny_vit, files).mean(0), atol=1e-5,
                                   rtol=1e-5)
    assert feats.x[-1].abs().sum() == 0


def test_wordnet_images_as_a_sequence(data_root, tiny_vit):
    folder = data_root / "sample_images" / "wn18"
    offsets = sorted(p.name[1:] for p in folder.iterdir())[:3]
    feats = ImageModality(folder=folder, encoder=tiny_vit, output="images", max_images=2).build(
        _kg(offsets), cache=False, progress=False)
    assert feats.x.shape == (3, 2, 16) and feats.lengths.tolist() == [2, 2, 2]
    files = list_entity_images(folder, offsets, max_images=2)
    for i in range(3):
        torch.testing.assert_close(feats.x[i], _direct(tiny_vit, files[i]), atol=1e-5,
                                   rtol=1e-5)


def test_unreadable_image_names_the_file(tmp_path, tiny_vit, data_root):
    good = next((data_root / "sample_images" / "fb15k" / "m.0_jm").iterdir())
    for entity in ("m.a", "m.b"):
        (tmp_path / entity).mkdir()
    (tmp_path / "m.a" / "1.jpg").write_bytes(good.read_bytes())
    (tmp_path / "m.b" / "1.jpg").write_bytes(b"not a jpeg")
    modality = ImageModality(folder=tmp_path, encoder=tiny_vit)
    with pytest.raises(ValueError, match=r"m\.b/1\.jpg: cannot read the image"):
        modality.build(_kg(["/m/a", "/m/b"]), cache=False, progress=False)
    lenient = ImageModality(folder=tmp_path, encoder=tiny_vit, skip_unreadable=True)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        feats = lenient.build(_kg(["/m/a", "/m/b"]), cache=False, progress=False)
    assert feats.mask.tolist() == [True, False]
