"""Entity images as MKGformer's vision stream reads them: one pixel tensor per image slot,
each slot at its own resolution."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mmgnn.utils.progress import progress_bar

# Normalisation of random towers (no image processor to read it from), as ViT's processor.
DEFAULT_MEAN, DEFAULT_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


@dataclass
class EntityImages:
    r"""Preprocessed images of the entities, one pixel tensor per image slot.

    Attributes:
        pixels (list[Tensor]): Slot :math:`k`: :obj:`(N_v, 3, S_k, S_k)`, normalised.
        present (Tensor): :obj:`(N_v, K)` bool, which slots hold an image.
        rows (Tensor): :obj:`(N,)` row of each entity in ``pixels``, :math:`-1` without images.
    """

    pixels: list[Tensor]
    present: Tensor
    rows: Tensor

    @property
    def num_with_images(self) -> int:
        return len(self.present)


def load_entity_images(folder: str | os.PathLike, entity_names: Sequence[str],
                       image_sizes: Sequence[int], mean: Sequence[float] = DEFAULT_MEAN,
                       std: Sequence[float] = DEFAULT_STD, progress: bool = True
                       ) -> EntityImages:
    """Reads up to ``len(image_sizes)`` images per entity from ``folder`` (one sub-folder per
    entity, see :func:`~mmgnn.modalities.image.list_entity_images`; the first files by name,
    where the released code samples 7 at random with seed 1), resizes image :math:`k` to
    ``image_sizes[k]`` (bicubic) and normalises it with ``mean`` / ``std``."""
    import numpy as np
    from PIL import Image

    from mmgnn.modalities.image import list_entity_images, read_image

    files = list_entity_images(folder, entity_names, max_images=len(image_sizes))
    owners = [i for i, f in enumerate(files) if f]
    rows = torch.full((len(entity_names),), -1, dtype=torch.long)
    rows[owners] = torch.arange(len(owners))
    pixels = [torch.zeros(len(owners), 3, s, s) for s in image_sizes]
    present = torch.zeros(len(owners), len(image_sizes), dtype=torch.bool)
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    for row, i in enumerate(progress_bar(owners, desc="reading images", disable=not progress,
                                         leave=False)):
        for k, path in enumerate(files[i]):
            img = read_image(path).resize((image_sizes[k], image_sizes[k]),
                                          Image.Resampling.BICUBIC)
            x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
            pixels[k][row] = (x - m) / s
            present[row, k] = True
    return EntityImages(pixels, present, rows)
