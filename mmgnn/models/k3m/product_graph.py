"""K3M's product knowledge graph as a :class:`~mmgnn.data.MultiModalKG` (the one graph
object of mmgnn, a PyG :class:`~torch_geometric.data.HeteroData`).

Nodes: ``entity`` (one per product row: the items, ``entity_names`` = item ids) and ``value``
(one per distinct property value). Edges: ``("entity", "property", "value")``, one per
``<item, property, value>`` triple of the item's KG field, with the property id in
``edge_type`` (names in ``graph.property_names``). Values are literals, not entities, so the
graph has no entity-to-entity relations and its link-prediction splits are empty. Per item,
the three streams of K3M (spec ``K3M.md``, section 1) are modalities of the ``entity`` nodes:
``title`` and ``knowledge`` (the text ``p1:v1;p2:v2;...``, whose property and value token
spans are stored per triple) as integer token ids with lengths, and ``image``, present only
where features are given (the sample ships image URLs, not images). Every modality has a
presence mask.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from mmgnn.data.kg import ENTITY, MultiModalKG
from mmgnn.models.k3m.products import ProductTable, read_k3m_products

PAIR_SEP, KV_SEP = ";", ":"  # K3M's serialisation; ids 132 / 131 in bert-base-chinese
ITEM_EDGE = (ENTITY, "property", "value")
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
                        image_boxes: Tensor | None = None, name: str = "products"
                        ) -> MultiModalKG:
    r"""The product KG of one or more product tables (rows concatenated; ``split`` on the
    ``entity`` nodes gives the table index: 0 train, 1 valid for ``K3M-sample``).

    Args:
        tables (ProductTable or list): Rows from :func:`read_k3m_products`.
        tokenizer: A ``transformers`` tokenizer (:func:`k3m_tokenizer`).
        max_title_length (int): Title tokens with ``[CLS]``/``[SEP]`` (K3M: 36).
        max_knowledge_length (int): Knowledge tokens (K3M: 48); pairs beyond are dropped
            from the text and their triples get span ``-1`` (counted in
            ``graph.num_pairs_truncated``).
        image (tuple[Tensor, Tensor], optional): ``(x, mask)``: region / patch features
            :obj:`(N, R, d)` (or :obj:`(N, d)`, one region) and presence :obj:`(N,)`, rows in
            item order (see :func:`mmgnn.modalities.load_feature_file`); rows of absent
            items become zeros. Without it the graph has no ``image`` modality.
        image_boxes (Tensor, optional): :obj:`(N, R, 5)` region boxes ``(x1/W, y1/H, x2/W,
            y2/H, area)``; default the whole image ``(0, 0, 1, 1, 1)``.
        name (str): The graph's name. (default: :obj:`"products"`)

    Returns:
        MultiModalKG: ``entity_names`` = item ids; on the ``entity`` nodes the modalities
        ``title`` (``x_title`` :obj:`(N, L_t)` token ids, ``mask_title``, ``length_title``),
        ``knowledge`` (:obj:`(N, L_k)`; present when it holds a pair) and, with ``image``,
        ``image`` (:obj:`(N, R, d)`) with ``image_boxes`` :obj:`(N, R, 5)`; ``y`` (category
        id, names in ``category_names``) and ``split``; ``value`` nodes; ``(entity,
        property, value)`` edges with ``edge_type`` (property id, names in
        ``property_names``) and ``span`` :obj:`(E, 4)`. Lengths of absent rows are 0 (the
        rows keep their ``[CLS] [SEP]`` ids).
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
    no_triples = torch.empty(0, 3, dtype=torch.long)  # values are literals: no KG relations
    kg = MultiModalKG(item_ids, [], no_triples, no_triples, no_triples, name=name)
    title_ids, title_lengths = _pad(titles, max_title_length, tokenizer.pad_token_id)
    title_mask = torch.tensor([bool(t) for t in (r for tb in tables for r in tb.titles)],
                              dtype=torch.bool)
    kg.add_modality("title", title_ids, title_mask, title_lengths)
    knowledge_ids, knowledge_lengths = _pad(knowledge, max_knowledge_length,
                                            tokenizer.pad_token_id)
    kg.add_modality("knowledge", knowledge_ids, knowledge_lengths > 2, knowledge_lengths)
    entity = kg[ENTITY]
    if image is not None:
        x, mask = image
        x = x.unsqueeze(1) if x.dim() == 2 else x
        if x.size(0) != n or mask.shape != (n,):
            raise ValueError(f"image features: expected (N={n}, R, d) with a ({n},) mask, got "
                             f"{tuple(x.shape)} and {tuple(mask.shape)}")
        kg.add_modality("image", x.float(), mask.bool())
        boxes = image_boxes if image_boxes is not None else \
            torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]).expand(n, x.size(1), 5).clone()
        entity.image_boxes = boxes.float()
    categories = sorted(set(cats))
    cat_index = {c: k for k, c in enumerate(categories)}
    entity.y = torch.tensor([cat_index[c] for c in cats], dtype=torch.long)
    entity.split = torch.tensor(split, dtype=torch.long)
    kg["value"].num_nodes = len(value_index)
    edge = kg[ITEM_EDGE]
    edge.edge_index = torch.tensor([heads, values], dtype=torch.long).view(2, -1)
    edge.edge_type = torch.tensor(props, dtype=torch.long)
    edge.span = torch.tensor(spans, dtype=torch.long).view(-1, 4)
    kg.category_names = categories
    kg.property_names, kg.value_names = list(prop_index), list(value_index)
    kg.num_pairs_truncated = int(truncated)
    return kg


def load_k3m_sample(root: str | os.PathLike | None = None, tokenizer=None,
                    **kwargs) -> MultiModalKG:
    """``K3M-sample`` (train and valid rows) as a product graph, tokenised with the
    bert-base-chinese vocabulary shipped with it unless ``tokenizer`` is given; ``kwargs`` go
    to :func:`build_product_graph`."""
    files = k3m_sample_files(root)
    tokenizer = tokenizer or k3m_tokenizer(files["vocab"])
    tables = [read_k3m_products(files["train"]), read_k3m_products(files["valid"])]
    return build_product_graph(tables, tokenizer, **{"name": "K3M-sample", **kwargs})


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
