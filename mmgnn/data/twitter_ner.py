"""Twitter-2015 / Twitter-2017 multimodal NER (Zhang et al., AAAI 2018; Lu et al., ACL 2018;
the UMT release): CoNLL-style ``word<TAB>tag`` lines in BIO, an ``IMGID:`` line opening each
tweet, a blank line closing it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mmgnn.data.mnre import SPLITS, task_folder
from mmgnn.data.parsing import DataFormatError, PathLike, read_lines

#: The BIO tags of both datasets, ``OTHER`` written ``MISC`` (as the released MNER processor).
NER_TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC")
#: File of each split (jefferyYu/UMT ``data/twitter2015``, ``data/twitter2017``).
NER_FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}


@dataclass
class TaggedSentences:
    """Sentences with one BIO tag per word.

    Attributes:
        tokens (list[list[str]]): The words of each sentence.
        tags (list[Tensor]): The tag ids of each sentence (indices into ``tag_names``).
        images (list[str]): The image file name of each sentence (``IMGID`` + ``.jpg``).
        tag_names (list[str]): Tag names by id (``tag_names[0]`` is ``O``).
        source (str): Where the sentences were read from.
    """

    tokens: list[list[str]]
    tags: list[Tensor]
    images: list[str]
    tag_names: list[str]
    source: str = ""

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, index: Tensor | Sequence[int]) -> TaggedSentences:
        """The sentences at ``index``, in that order."""
        rows = torch.as_tensor(index, dtype=torch.long).tolist()
        return TaggedSentences([self.tokens[i] for i in rows], [self.tags[i] for i in rows],
                               [self.images[i] for i in rows], self.tag_names, self.source)

    def tag_strings(self) -> list[list[str]]:
        """The tags of every sentence as names."""
        return [[self.tag_names[t] for t in tags.tolist()] for tags in self.tags]

    def __repr__(self) -> str:
        return f"TaggedSentences({len(self)}, tags={len(self.tag_names)}, source={self.source!r})"


def read_conll_bio(path: PathLike, tag_names: Sequence[str] = NER_TAGS) -> TaggedSentences:
    """Reads a Twitter NER file: ``IMGID:<id>`` opens a tweet, then one ``word<TAB>tag`` per
    line, a blank line ends it. ``OTHER`` in a tag is read as ``MISC`` (the released
    processor's renaming, so both datasets share :data:`NER_TAGS`).

    A line that is not an ``IMGID`` line, a ``word<TAB>tag`` pair with a tag of
    ``tag_names`` or a blank line, a word before any ``IMGID`` line, an ``IMGID`` line inside
    a tweet or a tweet without words raises :class:`~mmgnn.data.DataFormatError` naming the
    file and the line.

    Args:
        path (str or PathLike): The file.
        tag_names (Sequence[str]): The tag set (its order gives the ids).
            (default: :data:`NER_TAGS`)
    """
    lines = read_lines(path, "a CoNLL BIO file with IMGID lines")
    index = {t: k for k, t in enumerate(tag_names)}
    tokens, tags, images = [], [], []
    words: list[str] | None = None
    ids: list[int] = []
    opened = 0

    def close(line: int) -> None:
        if not words:
            raise DataFormatError(path, line, "at least one 'word<TAB>tag' line after the "
                                  f"IMGID line of line {opened}", "")
        tokens.append(words)
        tags.append(torch.tensor(ids, dtype=torch.long))

    for i, text in enumerate(lines, 1):
        if text.startswith("IMGID:"):
            if words is not None:
                raise DataFormatError(path, i, "a blank line before the next IMGID line", text)
            image = text[len("IMGID:"):].strip()
            if not image:
                raise DataFormatError(path, i, "IMGID:<image id>", text)
            images.append(image + ".jpg")
            words, ids, opened = [], [], i
        elif not text.strip():
            if words is None:
                raise DataFormatError(path, i, "an IMGID line before a blank line", text)
            close(i)
            words = None
        else:
            parts = text.split("\t")
            if len(parts) != 2 or not parts[0]:
                raise DataFormatError(path, i, "'word<TAB>tag'", text)
            if words is None:
                raise DataFormatError(path, i, "an IMGID:<id> line opening the tweet", text)
            tag = parts[1].replace("OTHER", "MISC")
            if tag not in index:
                raise DataFormatError(path, i, f"a tag of {', '.join(tag_names)}", text)
            words.append(parts[0])
            ids.append(index[tag])
    if words is not None:
        close(len(lines) + 1)
    return TaggedSentences(tokens, tags, images, list(tag_names), str(path))


def load_twitter_ner(name: str = "Twitter2017", root: PathLike | None = None
                     ) -> dict[str, TaggedSentences]:
    """The train / valid / test splits of a Twitter NER folder (``Twitter2015``,
    ``Twitter2017`` or a folder path) with :data:`NER_FILES`."""
    folder = task_folder(name, root)
    out = {}
    for split in SPLITS:
        path = folder / NER_FILES[split]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found (the {split} split of {name})")
        out[split] = read_conll_bio(path)
    return out
