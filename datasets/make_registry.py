"""Writes ``mmgnn/data/registry.tsv`` from the shared copy of the benchmark files.

Usage::

    python datasets/make_registry.py [SHARED_DATASETS]   # default: ../shared/datasets

Every file listed in ``SHA256SUMS`` becomes one row ``dataset file url sha256 bytes``. The URL
is ``https://raw.githubusercontent.com/{repo}/{commit}/{path}`` from ``PROVENANCE.tsv``. Six
files have a checksum but no provenance line; their URLs are set in ``EXTRA_SOURCES`` below
and pinned by their checksum (see ``datasets/FB15k-237.md`` and ``datasets/WN18RR.md``).
The script fails if a file has no source, or if a size disagrees between the provenance table
and the file on disk.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"

# RotatE's copies (DeepGraphLearning/KnowledgeGraphEmbedding) of the original FB15k-237 (with
# its CRLF line ends) and WN18RR (synset offsets) files. villmow/datasets_knowledge_embedding's
# WN18RR/text/ files use synset names (e.g. "trade_name.n.01"), not offsets, so their checksum
# cannot match the offsets-based release.
_ROTATE = ("DeepGraphLearning/KnowledgeGraphEmbedding", "617062aaedf53bf4d6b44450a580a96dc30e0632")
EXTRA_SOURCES = {
    **{f"FB15k-237/{f}": RAW.format(repo=_ROTATE[0], commit=_ROTATE[1],
                                    path=f"data/FB15k-237/{f}")
       for f in ("train.txt", "valid.txt", "test.txt")},
    **{f"WN18RR/{f}": RAW.format(repo=_ROTATE[0], commit=_ROTATE[1], path=f"data/wn18rr/{f}")
       for f in ("train.txt", "valid.txt", "test.txt")},
}
NOT_DATA = {"README.md", "PROVENANCE.tsv", "SHA256SUMS"}


def main(shared: Path) -> None:
    sums = {}
    for line in (shared / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(None, 1)
        sums[name.removeprefix("./")] = digest
    sources: dict[str, tuple[str, int]] = {}
    rows = (shared / "PROVENANCE.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0].split("\t") == ["dataset", "file", "repo", "path", "commit", "bytes"], rows[0]
    for row in rows[1:]:
        dataset, file, repo, path, commit, size = row.split("\t")
        sources[f"{dataset}/{file}"] = (RAW.format(repo=repo, commit=commit, path=path),
                                        int(size))
    for rel, url in EXTRA_SOURCES.items():
        sources[rel] = (url, (shared / rel).stat().st_size)
    out = ["\t".join(("dataset", "file", "url", "sha256", "bytes"))]
    for rel in sorted(sums):
        if rel in NOT_DATA:
            continue
        if rel not in sources:
            raise SystemExit(f"{shared / rel}: has a checksum but no source URL")
        url, size = sources.pop(rel)
        on_disk = (shared / rel).stat().st_size
        if on_disk != size:
            raise SystemExit(f"{shared / rel}: {on_disk} bytes on disk, {size} in provenance")
        dataset, file = rel.split("/", 1)
        out.append("\t".join((dataset, file, url, sums[rel], str(size))))
    if sources:
        raise SystemExit(f"sources without a checksum: {sorted(sources)}")
    target = ROOT / "mmgnn" / "data" / "registry.tsv"
    target.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"wrote {target}: {len(out) - 1} files")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "datasets")
