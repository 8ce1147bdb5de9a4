"""Side-information readers (texts, numeric attributes) on small files in ``tmp_path``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from mmgnn.data.kg import MultiModalKG
from mmgnn.data.side_info import (
    names_from_uris,
    normalize_attributes,
    read_entity_text,
    read_numeric_triples,
    read_wikidata_json,
    read_wordnet_text,
    uri_to_name,
)

ENTITIES = ["/m/a", "/m/b", "/m/c", "/m/d"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def raises_at(path: Path, line: int, *fragments: str):
    pattern = re.escape(f"{path} line {line}: expected")
    pattern += "".join(f"(?s:.*){re.escape(f)}" for f in fragments)
    return pytest.raises(ValueError, match=pattern)


# ------------------------------------------------------------------------------- texts
def test_entity_text_skips_unknown_with_warning(tmp_path):
    path = write(tmp_path, "entity2text.txt",
                 "/m/b\tBob\r\n/m/zz\tNot here\r\n/m/a\tAlice Smith\r\n/m/c\t \r\n")
    with pytest.warns(UserWarning, match=r"skipped 1 of 4 rows naming an entity that is not in "
                                         r"the vocabulary \(4 entities; e.g. '/m/zz'\)"):
        texts = read_entity_text(path, ENTITIES)
    assert texts.texts == {"name": ["Alice Smith", "Bob", None, None]}
    assert texts.skipped == 1 and texts.coverage("name") == 2


@pytest.mark.parametrize("text,line,fragments", [
    ("/m/a\tA\n/m/b B\n", 2, ("'entity<TAB>text'", "'/m/b B'")),
    ("/m/a\tA\n/m/a\tA again\n", 2, ("one row per entity", "line 1")),
    ("/m/a\tA\n\tB\n", 2, ("'entity<TAB>text'",)),
])
def test_entity_text_errors(tmp_path, text, line, fragments):
    path = write(tmp_path, "entity2text.txt", text)
    with raises_at(path, line, *fragments):
        read_entity_text(path, ENTITIES)


def test_wordnet_text_splits_lemma_and_gloss(tmp_path):
    path = write(tmp_path, "wordnet_entity2text.txt",
                 "01\tstool, solid excretory product, from the bowels\n02\tgenus burhinus, a "
                 "genus; \"x, y\"\n")
    texts = read_wordnet_text(path, ["02", "01", "03"])
    assert texts.texts["name"] == ["genus burhinus", "stool", None]
    assert texts.texts["description"] == ['a genus; "x, y"',
                                          "solid excretory product, from the bowels", None]


def test_wordnet_text_without_gloss_is_an_error(tmp_path):
    path = write(tmp_path, "wordnet_entity2text.txt", "01\tstool, a thing\n02\tno gloss\n")
    with raises_at(path, 2, "'offset<TAB>lemma, gloss'", "'no gloss'"):
        read_wordnet_text(path, ["01", "02"])


def test_wikidata_json(tmp_path):
    data = {"/m/a": {"label": "Denton", "description": "city in Texas", "alternatives": []},
            "/m/c": {"label": "Waco", "description": None},
            "/m/zz": {"label": "elsewhere", "description": "x"}}
    path = write(tmp_path, "entity2wikidata.json", json.dumps(data, indent=2))
    texts = read_wikidata_json(path, ENTITIES, warn=False)
    assert texts.texts["label"] == ["Denton", None, "Waco", None]
    assert texts.texts["description"] == ["city in Texas", None, None, None]
    assert texts.skipped == 1


def test_wikidata_json_errors(tmp_path):
    path = write(tmp_path, "entity2wikidata.json", '{\n  "/m/a": {"label": "A"},\n  "/m/b": \n}')
    with pytest.raises(ValueError, match=re.escape(f"{path} line 4: expected JSON")):
        read_wikidata_json(path, ENTITIES)
    path = write(tmp_path, "e.json", '{\n "/m/a": {"label": "A"},\n "/m/b": {"label": 3}\n}')
    with pytest.raises(ValueError, match=re.escape(f"{path} line 3: expected an object with "
                                                   f"string or null 'label'")):
        read_wikidata_json(path, ENTITIES)
    path = write(tmp_path, "d.json", '{\n "/m/a": {"label": "A"},\n "/m/a": {"label": "B"}\n}')
    with pytest.raises(ValueError, match=re.escape(f"{path} line 2: expected one entry per key")):
        read_wikidata_json(path, ENTITIES)


@pytest.mark.parametrize("uri,name", [
    ("<http://dbpedia.org/resource/Foo_Bar>", "Foo Bar"),
    ("<http://dbpedia.org/resource/HIV/AIDS>", "HIV/AIDS"),
    ("<http://dbpedia.org/resource/Caf%C3%A9_de_Flore>", "Café de Flore"),
    ("<http://dbpedia.org/resource/Sampler_(musical_instrument)>", "Sampler (musical instrument)"),
    ("http://www.wikidata.org/entity/Q370252", "Q370252"),
    ("<http://www.w3.org/2000/01/rdf-schema#seeAlso>", "seeAlso"),
    ("freon", "freon"),
])
def test_uri_to_name(uri, name):
    assert uri_to_name(uri) == name


def test_texts_attach_to_kg():
    kg = MultiModalKG(["<http://dbpedia.org/resource/A_b>", "x"], ["r"], [[0, 0, 1]],
                      torch.empty(0, 3), torch.empty(0, 3))
    names_from_uris(kg.entity_names).attach_to(kg)
    assert kg.texts["name"] == ["A b", "x"]


# ------------------------------------------------------------------------------ numeric
NUMERIC = """/m/a\tarea\t10
/m/b\tarea\t30.5
/m/c\tarea\t-2e1
/m/a\tpop\t7
/m/zz\tpop\t1
/m/b\tconst\t4
/m/c\tconst\t4.0
/m/zz\tonly_elsewhere\t3
"""


def test_numeric_matrix_mask_and_skip_warning(tmp_path):
    path = write(tmp_path, "literals.txt", NUMERIC)
    with pytest.warns(UserWarning, match=r"skipped 2 of 8 rows .*'/m/zz'"):
        attrs = read_numeric_triples(path, ENTITIES, normalization="none")
    assert attrs.names == ["area", "pop", "const", "only_elsewhere"]
    assert attrs.skipped == 2
    expected_mask = [[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert attrs.mask.int().tolist() == expected_mask
    assert attrs.entity_mask.tolist() == [True, True, True, False]
    assert attrs.raw.dtype == torch.float64
    assert attrs.raw.tolist() == [[10, 7, 0, 0], [30.5, 0, 4, 0], [-20, 0, 4, 0], [0, 0, 0, 0]]
    assert torch.equal(attrs.values, attrs.raw.float())


def test_numeric_minmax_and_zscore_over_present_values(tmp_path):
    path = write(tmp_path, "literals.txt", NUMERIC)
    minmax = read_numeric_triples(path, ENTITIES, warn=False)
    area = [10, 30.5, -20]  # present values only; entity /m/d has none and must not count as 0
    lo, hi = min(area), max(area)
    assert minmax.values[:3, 0].tolist() == pytest.approx([(v - lo) / (hi - lo) for v in area])
    assert minmax.values[0, 1] == 0  # a single present value: zero span maps to 0
    assert minmax.values[1:3, 2].tolist() == [0, 0]  # constant attribute maps to 0
    assert minmax.values[3].abs().sum() == 0 and minmax.values.dtype == torch.float32
    z = read_numeric_triples(path, ENTITIES, normalization="zscore", warn=False)
    mean = sum(area) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in area) / 3)
    assert z.values[:3, 0].tolist() == pytest.approx([(v - mean) / std for v in area], rel=1e-6)
    assert z.values[3].abs().sum() == 0


def test_normalize_attributes_rejects_unknown_method():
    with pytest.raises(ValueError, match="normalization must be one of"):
        normalize_attributes(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool), "l2")


@pytest.mark.parametrize("row,fragments", [
    ("/m/b\tarea\tNaN", ("a finite number", "'NaN'")),
    ("/m/b\tarea\tinf", ("a finite number",)),
    ("/m/b\tarea\t12 km2", ("a finite number", "'12 km2'")),
    ("/m/b\tarea", ("'entity attribute value' as three fields",)),
    ("/m/b area 3", ("'entity attribute value' as three fields",)),
    ("/m/a\tarea\t11", ("one value per entity and attribute", "line 1")),
])
def test_numeric_errors(tmp_path, row, fragments):
    path = write(tmp_path, "literals.txt", f"/m/a\tarea\t10\n{row}\n")
    with raises_at(path, 2, *fragments):
        read_numeric_triples(path, ENTITIES)


def test_numeric_attach_to_kg(tmp_path):
    path = write(tmp_path, "literals.txt", NUMERIC)
    kg = MultiModalKG(ENTITIES, ["r"], [[0, 0, 1]], torch.empty(0, 3), torch.empty(0, 3))
    attrs = read_numeric_triples(path, kg.entity_names, warn=False)
    attrs.attach_to(kg)
    assert kg.features["numeric"].shape == (4, 4)
    assert kg.masks["numeric"].tolist() == [True, True, True, False]
    assert kg.extras["numeric"] is attrs and kg.extras["numeric"].mask.shape == (4, 4)


@pytest.mark.parametrize("row,fragments", [
    ("/m/b\tarea\t1.7e308", ("a finite number", "'1.7e308'", "magnitude at most")),
    ("/m/b\tarea\t1_0", ("a finite number", "'1_0'")),
    ("/m/b\tarea\t٣", ("a finite number", "'٣'")),
    ("/m/b\tarea\t 3", ("a finite number", "' 3'")),
    ("/m/b\tarea\tinfinity", ("a finite number",)),
    ("/m/b \tarea\t3", ("without leading or trailing whitespace", "'/m/b '")),
    ("/m/b\t area\t3", ("without leading or trailing whitespace", "' area'")),
])
def test_numeric_values_and_names_are_strict(tmp_path, row, fragments):
    path = write(tmp_path, "literals.txt", f"/m/a\tarea\t10\n{row}\n")
    with raises_at(path, 2, *fragments):
        read_numeric_triples(path, ENTITIES)


def test_normalize_attributes_never_overflows():
    # min-max of +-1.7e308 overflowed (max - min = inf) and gave NaN; the references below
    # work on Python floats scaled by a power of two first, which is exact for these values.
    column = [1.7e308, -1.7e308, 0.0, 1e307]
    x = torch.tensor(column, dtype=torch.float64).view(-1, 1)
    mask = torch.ones_like(x, dtype=torch.bool)
    half = [v / 2 for v in column]
    lo, hi = min(half), max(half)
    assert normalize_attributes(x, mask).view(-1).tolist() == [(v - lo) / (hi - lo) for v in half]
    tiny = [v * 2.0 ** -1000 for v in column]
    mean = sum(tiny) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in tiny) / 4)
    z = normalize_attributes(x, mask, "zscore").view(-1).tolist()
    assert z == pytest.approx([(v - mean) / std for v in tiny], rel=1e-12)


def test_side_text_keys_are_names_and_deep_json_is_an_error(tmp_path):
    path = write(tmp_path, "entity2text.txt", "/m/a\tAlpha\n/m/b \tBeta\n")
    with raises_at(path, 2, "without leading or trailing whitespace"):
        read_entity_text(path, ENTITIES)
    deep = write(tmp_path, "entity2wikidata.json", "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=re.escape(str(deep)) + ": expected a JSON object"):
        read_wikidata_json(deep, ENTITIES)
