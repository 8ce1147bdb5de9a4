"""K3M's e-commerce product sample: item id, title, image URL, item properties, category."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmgnn.data.parsing import PathLike, format_error, read_lines


@dataclass
class ProductTable:
    """The rows of a K3M product file (``products.{train,valid}.tsv`` of ``K3M-sample``).

    Args:
        item_ids (list[str]): Item ids, one per row.
        titles (list[str | None]): Product titles (Chinese), the text modality of K3M.
        image_urls (list[str | None]): Image URLs (the images themselves are not shipped).
        properties (list[list[tuple[str, str]]]): The item's ``(property, value)`` pairs, K3M's
            "knowledge" stream, in file order.
        categories (list[str]): Category label, the item-classification target.
        source (Path, optional): The file read.
    """

    item_ids: list[str]
    titles: list[str | None]
    image_urls: list[str | None]
    properties: list[list[tuple[str, str]]]
    categories: list[str]
    source: Path | None = None

    def __len__(self) -> int:
        return len(self.item_ids)


def read_k3m_products(path: PathLike) -> ProductTable:
    """Reads ``item id<TAB>title<TAB>image URL<TAB>p#:#v#;#p#:#v...<TAB>category`` rows.

    The property field is split at ``#;#`` into pairs and each pair at ``#:#`` (K3M's
    ``0_deal_raw_data_segment.py`` strips the ``#`` the same way); empty titles and URLs are
    :obj:`None`. A row with another number of fields, or a pair without ``#:#``, is an error
    naming the file and line.
    """
    expected = "'item id<TAB>title<TAB>image URL<TAB>p#:#v#;#...<TAB>category' (5 fields)"
    table = ProductTable([], [], [], [], [], Path(path))
    for lineno, line in enumerate(read_lines(path, f"{expected} rows"), 1):
        fields = line.split("\t")
        if len(fields) != 5 or not fields[0]:
            raise ValueError(format_error(path, lineno, line, expected))
        item, title, url, props, category = (f.strip() for f in fields)
        pairs = []
        for pair in filter(None, props.split("#;#")):
            key, sep, value = pair.partition("#:#")
            if not sep:
                raise ValueError(format_error(path, lineno, pair, "a 'property#:#value' pair"))
            pairs.append((key, value))
        table.item_ids.append(item)
        table.titles.append(title or None)
        table.image_urls.append(url or None)
        table.properties.append(pairs)
        table.categories.append(category)
    return table
