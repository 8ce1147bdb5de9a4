"""The image of each example of a text task (MNRE, Twitter NER): one file per example, usually
missing here, read from a folder the user points to."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from mmgnn.modalities.image import read_image
from mmgnn.modalities.image_slots import DEFAULT_MEAN, DEFAULT_STD


def load_example_images(folder: str | os.PathLike | None, image_ids: Sequence[str], size: int,
                        mean: Sequence[float] = DEFAULT_MEAN, std: Sequence[float] = DEFAULT_STD
                        ) -> dict[str, Tensor]:
    """Pixels :obj:`(3, size, size)` (bicubic resize, normalised with ``mean`` / ``std``) of
    every ``folder/<image id>`` that exists; an image id without a file is simply absent
    from the result (the example's image is a missing modality, masked by the model). A file
    that exists but cannot be read is an error naming it. ``folder=None``: no images.

    Args:
        folder (str or PathLike, optional): The image folder (``img_id`` / ``IMGID.jpg``
            file names relative to it; sub-folders allowed).
        image_ids (Sequence[str]): The examples' image file names.
        size (int): Pixel size (the vision tower's main-image slot).
    """
    if folder is None:
        return {}
    import numpy as np
    from PIL import Image

    root = Path(folder).expanduser()
    if not root.is_dir():
        example = image_ids[0] if image_ids else "x.jpg"
        raise FileNotFoundError(f"{root}: image folder not found (expected the examples' "
                                f"image files, e.g. {root}/{example})")
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    out: dict[str, Tensor] = {}
    for name in dict.fromkeys(image_ids):
        path = root / name
        if not path.is_file():
            continue
        img = read_image(path).resize((size, size), Image.Resampling.BICUBIC)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        out[name] = (x - m) / s
    return out
