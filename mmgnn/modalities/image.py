"""Image features from any ``transformers`` vision encoder (ViT, CLIP's vision tower, ...)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mmgnn.modalities.base import Modality, ModalityFeatures, fingerprint, register_modality
from mmgnn.modalities.pretrained import encoder_fingerprint, load_encoder, load_image_processor
from mmgnn.utils.progress import progress_bar

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
POOLINGS = ("cls", "mean", "pooler")
REDUCES = ("mean", "max")
OUTPUTS = ("vector", "images", "patches")


def image_folder_name(entity: str) -> str:
    """The folder of an entity's images in the MMKB / MKGformer layouts: a Freebase id
    ``/m/0_jm`` is ``m.0_jm``, a WordNet offset ``01945845`` is ``n01945845``; other names keep
    their characters with ``/`` replaced by ``.``."""
    if entity.isdigit():
        return f"n{entity}"
    return entity.strip("/").replace("/", ".")


def list_entity_images(folder: str | os.PathLike, entities: Sequence[str],
                       key: Callable[[str], str] = image_folder_name,
                       max_images: int | None = None) -> list[list[Path] | None]:
    """The image files of every entity: ``folder/key(entity)/*.{jpg,jpeg,png,...}`` sorted by
    name (at most ``max_images``), or :obj:`None` where the entity has no folder or no image."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: image folder not found (expected one sub-folder of "
                                f"images per entity, e.g. {root}/m.0_jm/1.jpg)")
    out: list[list[Path] | None] = []
    for entity in entities:
        sub = root / key(entity)
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) \
            if sub.is_dir() else []
        out.append(files[:max_images] if files else None)
    return out


def read_image(path: Path):
    """The image at ``path`` as an RGB :class:`PIL.Image.Image`; an error names the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the image ({e}); expected a file PIL can open "
                         f"(JPEG, PNG, ...)") from None


@torch.inference_mode()
def encode_images(images: Sequence[Sequence[Path] | None], model: torch.nn.Module, processor,
                  *, pooling: str = "cls", reduce: str = "mean", output: str = "vector",
                  batch_size: int = 16, skip_unreadable: bool = False,
                  progress: bool = True) -> ModalityFeatures:
    r"""Encodes the images of each entity and pools them into entity features.

    Every image is read with PIL, preprocessed by ``processor`` and encoded; with
    :math:`H \in \mathbb{R}^{P \times d}` its last hidden states (position 0 the CLS token)
    the image vector is ``cls`` :math:`H_0`, ``mean`` :math:`\frac{1}{P}\sum_p H_p` or
    ``pooler`` (the model's ``pooler_output``: CLIP's post-layernorm CLS, ViT's tanh head).
    An entity's :math:`k` image vectors are reduced by their ``mean`` (MMKB, IMF) or
    elementwise ``max``. ``output="images"`` keeps the :math:`k` vectors as a sequence
    (MMRNS reads several images per entity); ``output="patches"`` the concatenated
    :math:`k \cdot P` token states (MKGformer's visual tokens).

    Args:
        images (list[list[Path] | None]): Image files per entity (:obj:`None`: missing).
        model (torch.nn.Module): A vision encoder taking ``pixel_values``.
        processor: Its image processor.
        pooling (str): ``cls``, ``mean`` or ``pooler``. (default: ``cls``)
        reduce (str): ``mean`` or ``max`` over an entity's images. (default: ``mean``)
        output (str): ``vector``, ``images`` or ``patches``. (default: ``vector``)
        batch_size (int): Images per forward pass. (default: :obj:`16`)
        skip_unreadable (bool): Skip files PIL cannot read, with one warning counting them,
            instead of raising. (default: :obj:`False`)
        progress (bool): Show a progress bar. (default: :obj:`True`)

    Shapes:
        - **output.x:** :obj:`(N, d)`; :obj:`(N, k_max, d)` for ``images``;
          :obj:`(N, k_max P, d)` for ``patches``, with ``output.lengths`` :obj:`(N,)`.
    """
    for value, allowed, what in ((pooling, POOLINGS, "pooling"), (reduce, REDUCES, "reduce"),
                                 (output, OUTPUTS, "output")):
        if value not in allowed:
            raise ValueError(f"{what} must be one of {allowed}, got {value!r}")
    pairs = [(i, p) for i, files in enumerate(images) for p in (files or [])]
    device = next(model.parameters()).device
    vectors: list[torch.Tensor] = []
    owners: list[int] = []
    unreadable: list[Path] = []
    batches = [pairs[s:s + batch_size] for s in range(0, len(pairs), batch_size)]
    for batch in progress_bar(batches, desc="encoding images", disable=not progress,
                              leave=False):
        pictures = []
        for i, path in batch:
            try:
                pictures.append((i, read_image(path)))
            except ValueError:
                if not skip_unreadable:
                    raise
                unreadable.append(path)
        if not pictures:
            continue
        pixels = processor(images=[p for _, p in pictures], return_tensors="pt")["pixel_values"]
        out = model(pixel_values=pixels.to(device))
        hidden = out.last_hidden_state.float().cpu()
        if output == "patches":
            vectors.extend(hidden.unbind(0))
        elif pooling == "cls":
            vectors.extend(hidden[:, 0].unbind(0))
        elif pooling == "mean":
            vectors.extend(hidden.mean(1).unbind(0))
        else:
            vectors.extend(out.pooler_output.float().cpu().unbind(0))
        owners.extend(i for i, _ in pictures)
    if unreadable:
        warnings.warn(f"skipped {len(unreadable)} unreadable image files (first: "
                      f"{unreadable[0]}); their entities use their other images or are "
                      f"missing", stacklevel=2)
    n = len(images)
    dim = model.config.hidden_size
    mask = torch.zeros(n, dtype=torch.bool)
    per_entity: dict[int, list[torch.Tensor]] = {}
    for i, v in zip(owners, vectors, strict=True):
        per_entity.setdefault(i, []).append(v)
    mask[list(per_entity)] = True
    if output == "vector":
        x = torch.zeros(n, dim)
        for i, vs in per_entity.items():
            stacked = torch.stack(vs)
            x[i] = stacked.mean(0) if reduce == "mean" else stacked.amax(0)
        return ModalityFeatures(x, mask, None, {"images": len(owners)})
    rows = {i: torch.cat(vs) if output == "patches" else torch.stack(vs)
            for i, vs in per_entity.items()}
    longest = max((len(r) for r in rows.values()), default=1)
    x = torch.zeros(n, longest, dim)
    lengths = torch.zeros(n, dtype=torch.long)
    for i, r in rows.items():
        x[i, :len(r)] = r
        lengths[i] = len(r)
    return ModalityFeatures(x, mask, lengths, {"images": len(owners)})


@register_modality("image")
class ImageModality(Modality):
    r"""Image features of entities from a folder of images and a ``transformers`` vision
    encoder (:func:`encode_images`).

    The raw data are the image files of each entity, found by :func:`list_entity_images`
    under ``folder`` (``folder/m.0_jm/*.jpg`` for FB15k-237's ``/m/0_jm``,
    ``folder/n01945845/*.JPEG`` for a WordNet offset); entities without images are missing.
    The cache key covers each file's path, size and modification time.

    Args:
        folder (str or PathLike): One sub-folder of images per entity.
        encoder (str or PathLike): Hub id or folder of a vision model (ViT, CLIP, ...) saved
            with its image processor.
        pooling (str): ``cls``, ``mean`` or ``pooler``. (default: ``cls``)
        reduce (str): ``mean`` or ``max`` over an entity's images. (default: ``mean``)
        output (str): ``vector``, ``images`` or ``patches``. (default: ``vector``)
        max_images (int, optional): Images per entity, first by file name. (default: all)
        batch_size (int): Images per forward pass. (default: :obj:`16`)
        skip_unreadable (bool): Skip unreadable files with a warning. (default: :obj:`False`)
        device (str): Where the encoder runs. (default: ``cpu``)
        name (str, optional): Feature name. (default: ``image``)
    """

    def __init__(self, folder: str | os.PathLike | None = None,
                 encoder: str | os.PathLike | None = None, pooling: str = "cls",
                 reduce: str = "mean", output: str = "vector", max_images: int | None = None,
                 batch_size: int = 16, skip_unreadable: bool = False, device: str = "cpu",
                 name: str | None = None) -> None:
        super().__init__(name)
        if folder is None or encoder is None:
            raise ValueError("the image modality needs folder= (one sub-folder of images per "
                             "entity) and encoder= (a vision model's hub id or folder)")
        self.folder, self.encoder = Path(folder).expanduser(), str(encoder)
        self.pooling, self.reduce, self.output = pooling, reduce, output
        self.max_images = int(max_images) if max_images is not None else None
        self.batch_size, self.skip_unreadable, self.device = batch_size, skip_unreadable, device
        self._fingerprint: str | None = None

    def read(self, kg: MultiModalKG) -> list[list[Path] | None]:
        return list_entity_images(self.folder, kg.entity_names, max_images=self.max_images)

    def fingerprint(self, raw: list[list[Path] | None]) -> str:
        # Which entity owns which file, and each file's size and modification time.
        return fingerprint([len(raw)] + [[i, p] for i, files in enumerate(raw)
                                         for p in (files or [])])

    def settings(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = encoder_fingerprint(self.encoder)
        return {"folder": str(self.folder.resolve()), "encoder": self.encoder,
                "encoder_fingerprint": self._fingerprint, "pooling": self.pooling,
                "reduce": self.reduce, "output": self.output, "max_images": self.max_images,
                "skip_unreadable": self.skip_unreadable}

    def encode(self, raw: list[list[Path] | None], progress: bool = True) -> ModalityFeatures:
        model = load_encoder(self.encoder, "vision").to(self.device)
        processor = load_image_processor(self.encoder)
        out = encode_images(raw, model, processor, pooling=self.pooling, reduce=self.reduce,
                            output=self.output, batch_size=self.batch_size,
                            skip_unreadable=self.skip_unreadable, progress=progress)
        out.info["encoder"] = self.encoder
        return out
