"""Twitter NER reader (CoNLL BIO with IMGID lines): tweets as written, OTHER read as MISC,
clear errors naming file and line, the real files' sizes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmgnn.data.twitter_ner import NER_TAGS, load_twitter_ner, read_conll_bio

TWEETS = ("IMGID:17_06_1\nNew\tO\nYork\tB-LOC\nCity\tI-LOC\n\n"
          "IMGID:O_2\nKawhi\tB-PER\nwins\tB-OTHER\n")


def write(tmp_path: Path, text: str, name: str = "train.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_tweets(tmp_path):
    data = read_conll_bio(write(tmp_path, TWEETS))
    assert data.tokens == [["New", "York", "City"], ["Kawhi", "wins"]]
    assert data.images == ["17_06_1.jpg", "O_2.jpg"]
    assert data.tag_strings() == [["O", "B-LOC", "I-LOC"], ["B-PER", "B-MISC"]]
    assert data.tag_names == list(NER_TAGS)
    assert data.subset([1]).tokens == [["Kawhi", "wins"]]


@pytest.mark.parametrize("text, line, fragment", [
    ("IMGID:1\nNew O\n", 2, "'word<TAB>tag'"),
    ("IMGID:1\nNew\tB-FOO\n", 2, "a tag of O, B-PER"),
    ("New\tO\n", 1, "an IMGID:<id> line opening the tweet"),
    ("IMGID:1\nNew\tO\nIMGID:2\n", 3, "a blank line before the next IMGID line"),
    ("IMGID:1\n\nIMGID:2\nA\tO\n", 2, "at least one 'word<TAB>tag' line"),
    ("IMGID:\nA\tO\n", 1, "IMGID:<image id>"),
    ("IMGID:1\nA\tO\n\n\nIMGID:2\nB\tO\n", 4, "an IMGID line before a blank line"),
])
def test_bad_line_names_file_and_line(tmp_path, text, line, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=re.escape(f"{path} line {line}: expected") +
                       "(?s:.*)" + re.escape(fragment)):
        read_conll_bio(path)


def test_last_tweet_without_blank_line(tmp_path):
    assert len(read_conll_bio(write(tmp_path, TWEETS.rstrip("\n")))) == 2


@pytest.mark.parametrize("name, sizes", [("Twitter2015", (4000, 1000, 3257)),
                                         ("Twitter2017", (3373, 723, 723))])
def test_real_twitter(data_root, name, sizes):
    if not (data_root / name).is_dir():
        pytest.skip(f"no {name} under {data_root}")
    splits = load_twitter_ner(name, data_root)
    assert tuple(len(s) for s in splits.values()) == sizes
    tags = {t for s in splits.values() for sent in s.tag_strings() for t in sent}
    assert tags == set(NER_TAGS)  # OTHER (2015) read as MISC
