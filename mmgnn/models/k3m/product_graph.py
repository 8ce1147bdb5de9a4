"""K3M's product knowledge graph as a PyG :class:`~torch_geometric.data.HeteroData`.

Nodes: ``item`` (one per product row) and ``value`` (one per distinct property value). Edges:
``(item, property, value)``, one per ``<item, property, value>`` triple of the item's KG field,
with the property id in ``edge_type`` (names in ``graph.property_names``). Per item, the two
text streams of K3M (spec ``K3M.md``, section 1) as token ids: the **title** and the
**knowledge** text ``p1:v1;p2:v2;...``, whose property and value token spans are stored per
triple; and the **image** stream, present only where features are given (the sample ships
image URLs, not images). Every stream has a presence mask.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from mmgnn.models.k3m.products import ProductTable, read_k3m_products

PAIR_SEP, KV_SEP = ";", ":"  # K3M's serialisation; ids 132 / 131 in bert-base-chinese
ITEM_EDGE = ("item", "property", "value")
SPLIT_NAMES = ("train", "valid")


def k3m_sample_files(root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Paths of the ``K3M-sample`` files under ``root`` (default ``$MMGNN_DATA``):
    ``train``, ``valid``, ``vocab``, ``config``; a missing file is an error naming it."""
    base = Path(root or os.environ.get("MMGNN_DATA", "")).expanduser()
    folder = base if (base / "products.train.tsv").is_file() else base / "K3M-sample"
    files = {"train": folder / "products.train.tsv", "valid": folder / "products.valid.tsv",
             "vocab": folder / "bert-base-chinese-vocab.txt",
             "config": folder / "bert-base-chinese-config.json"}
    for what, path in files.items():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: K3M-sample {what} file not found (set MMGNN_DATA "
                                    f"to the folder holding K3M-sample/, or pass root=)")
    return files


def k3m_tokenizer(vocab: str | os.PathLike):
    """A BERT WordPiece tokenizer over ``vocab`` (one token per line, e.g. the
    bert-base-chinese vocabulary of ``K3M-sample``), or any tokenizer by hub id / folder."""
    if Path(vocab).is_file():
        from transformers import BertTokenizer

        return BertTokenizer(str(vocab))
    from mmgnn.modalities.pretrained import load_tokenizer

    return load_tokenizer(vocab)


def _clean(text: str) -> str:
    # ':' and ';' delimit the serialised pairs; inside a name they become full-width forms.
    return text.replace(KV_SEP, "：").replace(PAIR_SEP, "；")


def serialize_knowledge(pairs: Sequence[tuple[str, str]], tokenizer, max_length: int = 48,
                        ) -> tuple[list[int], list[tuple[int, int, int, int]]]:
    r"""Token ids of ``[CLS] p1 : v1 ; p2 : v2 ... [SEP]`` and, per pair, the half-open token
    spans ``(p_start, p_end, v_start, v_end)`` of its property and value (the released code's
    ``index_pv``). Pairs cut off by ``max_length`` get no span (``(-1, -1, -1, -1)``)."""
    ids, spans = [tokenizer.cls_token_id], []
    kv = tokenizer.convert_tokens_to_ids(KV_SEP)
    sep = tokenizer.convert_tokens_to_ids(PAIR_SEP)
    for j, (prop, value) in enumerate(pairs):
        p = tokenizer.encode(_clean(prop), add_special_tokens=False)
        v = tokenizer.encode(_clean(value), add_special_tokens=False)
        start = len(ids) + (1 if j else 0)
        chunk = ([sep] if j else []) + p + [kv] + v
        if len(ids) + len(chunk) + 1 > max_length or not p or not v:
            spans.append((-1, -1, -1, -1))
            continue
        ids += chunk
        spans.append((start, start + len(p), start + len(p) + 1, start + len(p) + 1 + len(v)))
    return ids + [tokenizer.sep_token_id], spans


def _pad(rows: list[list[int]], length: int, pad: int) -> tuple[Tensor, Tensor]:
    out = torch.full((len(rows), length), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out, torch.tensor([len(r) for r in rows], dtype=torch.long)


def build_product_graph(tables: ProductTable | Sequence[ProductTable], tokenizer, *,
                        max_title_length: int = 36, max_knowledge_length: int = 48,
                        image: tuple[Tensor, Tensor] | None = None,
                        image_boxes: Tensor | None = None) -> HeteroData:
    r"""The product KG of one or more product tables (rows concatenated; ``item.split`` gives
    the table index: 0 train, 1 valid for ``K3M-sample``).

    Args:
        tables (ProductTable or list): Rows from :func:`read_k3m_products`.
        tokenizer: A ``transformers`` tokenizer (:func:`k3m_tokenizer`).
        max_title_length (int): Title tokens with ``[CLS]``/``[SEP]`` (K3M: 36).
        max_knowledge_length (int): Knowledge tokens (K3M: 48); pairs beyond are dropped
            from the text and their triples get span ``-1`` (counted in
            ``graph.num_pairs_truncated``).
        image (tuple[Tensor, Tensor], optional): ``(x, mask)``: region / patch features
            :obj:`(N, R, d)` (or :obj:`(N, d)`, one region) and presence :obj:`(N,)`, rows in
            item order (see :func:`mmgnn.modalities.load_feature_file`). Without it the image
            stream is missing for every item.
        image_boxes (Tensor, optional): :obj:`(N, R, 5)` region boxes ``(x1/W, y1/H, x2/W,
            y2/H, area)``; default the whole image ``(0, 0, 1, 1, 1)``.

    Returns:
        HeteroData: ``item`` with ``title_ids`` :obj:`(N, L_t)`, ``title_lengths``,
        ``title_mask``, ``knowledge_ids`` :obj:`(N, L_k)`, ``knowledge_lengths``,
        ``knowledge_mask``, ``image_x``, ``image_boxes``, ``image_mask``, ``y`` (category id,
        names in ``category_names``) and ``split``; ``value`` nodes; ``(item, property,
        value)`` edges with ``edge_type`` (property id) and ``span`` :obj:`(E, 4)`.
    """
    tables = [tables] if isinstance(tables, ProductTable) else list(tables)
    if not tables:
        raise ValueError("build_product_graph needs at least one ProductTable")
    titles, knowledge, split, cats, item_ids = [], [], [], [], []
    heads, props, values, spans = [], [], [], []
    prop_index: dict[str, int] = {}
    value_index: dict[str, int] = {}
    truncated = 0
    for s, table in enumerate(tables):
        for title, pairs, cat, item in zip(table.titles, table.properties, table.categories,
                                           table.item_ids, strict=True):
            i = len(item_ids)
            item_ids.append(item)
            cats.append(cat)
            split.append(s)
            titles.append(tokenizer.encode(title or "", add_special_tokens=True,
                                           truncation=True, max_length=max_title_length))
            ids, pair_spans = serialize_knowledge(pairs, tokenizer, max_knowledge_length)
            knowledge.append(ids)
            for (prop, value), span in zip(pairs, pair_spans, strict=True):
                heads.append(i)
                props.append(prop_index.setdefault(prop, len(prop_index)))
                values.append(value_index.setdefault(value, len(value_index)))
                spans.append(span)
                truncated += span[0] < 0
    n = len(item_ids)
    data = HeteroData()
    item = data["item"]
    item.num_nodes = n
    item.title_ids, item.title_lengths = _pad(titles, max_title_length, tokenizer.pad_token_id)
    item.title_mask = torch.tensor([bool(t) for t in
                                    (r for tb in tables for r in tb.titles)], dtype=torch.bool)
    item.knowledge_ids, item.knowledge_lengths = _pad(knowledge, max_knowledge_length,
                                                      tokenizer.pad_token_id)
    item.knowledge_mask = item.knowledge_lengths > 2
    if image is not None:
        x, mask = image
        x = x.unsqueeze(1) if x.dim() == 2 else x
        if x.size(0) != n or mask.shape != (n,):
            raise ValueError(f"image features: expected (N={n}, R, d) with a ({n},) mask, got "
                             f"{tuple(x.shape)} and {tuple(mask.shape)}")
        item.image_x, item.image_mask = x.float(), mask.bool()
        boxes = image_boxes if image_boxes is not None else \
            torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]).expand(n, x.size(1), 5).clone()
        item.image_boxes = boxes.float()
    else:  # no image_x / image_boxes attributes
        item.image_mask = torch.zeros(n, dtype=torch.bool)
    categories = sorted(set(cats))
    cat_index = {c: k for k, c in enumerate(categories)}
    item.y = torch.tensor([cat_index[c] for c in cats], dtype=torch.long)
    item.split = torch.tensor(split, dtype=torch.long)
    data["value"].num_nodes = len(value_index)
    edge = data[ITEM_EDGE]
    edge.edge_index = torch.tensor([heads, values], dtype=torch.long).view(2, -1)
    edge.edge_type = torch.tensor(props, dtype=torch.long)
    edge.span = torch.tensor(spans, dtype=torch.long).view(-1, 4)
    data.item_ids, data.category_names = item_ids, categories
    data.property_names, data.value_names = list(prop_index), list(value_index)
    data.num_pairs_truncated = int(truncated)
    return data


def load_k3m_sample(root: str | os.PathLike | None = None, tokenizer=None,
                    **kwargs) -> HeteroData:
    """``K3M-sample`` (train and valid rows) as a product graph, tokenised with the
    bert-base-chinese vocabulary shipped with it unless ``tokenizer`` is given; ``kwargs`` go
    to :func:`build_product_graph`."""
    files = k3m_sample_files(root)
    tokenizer = tokenizer or k3m_tokenizer(files["vocab"])
    tables = [read_k3m_products(files["train"]), read_k3m_products(files["valid"])]
    return build_product_graph(tables, tokenizer, **kwargs)


def category_split(y: Tensor, min_count: int = 2, test_fraction: float = 0.3,
                   seed: int = 0) -> tuple[Tensor, Tensor]:
    r"""A stratified item split for category classification: categories with at least
    ``min_count`` items are kept; of each, :math:`\max(1, \lfloor f n + 1/2 \rfloor)` items
    (at most :math:`n - 1`) go to the test side. Returns ``(train_ids, test_ids)``.

    ``K3M-sample``'s own train/valid rows share few categories (271 in 400 train rows; 38 of
    the 100 valid rows have a category seen in train), so this split is what makes the task
    learnable."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(y):
        ids = (y == c).nonzero().view(-1)
        if len(ids) < min_count:
            continue
        ids = ids[torch.randperm(len(ids), generator=g)]
        k = min(max(1, int(test_fraction * len(ids) + 0.5)), len(ids) - 1)
        test.append(ids[:k])
        train.append(ids[k:])
    if not train:
        raise ValueError(f"no category has {min_count} items; lower min_count")
    return torch.cat(train).sort().values, torch.cat(test).sort().values
