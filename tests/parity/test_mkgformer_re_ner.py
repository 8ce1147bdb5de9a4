"""Parity of mmgnn's MKGformer RE and NER heads with the released ones (``zjunlp/MKGformer``
at the spec commit; spec ``MKGformer.md`` section 3): ``MRE/models/unimo_model.py``
(``UnimoREModel``: the ``<s>`` / ``<o>`` states concatenated, a linear classifier, the
cross-entropy) and ``MNER/models/unimo_model.py`` (``UnimoCRFModel``: dropout, a linear layer
and ``torchcrf.CRF`` over every word piece, the mean negative log-likelihood, Viterbi
decoding). Logits / emissions, loss, CRF log-likelihood, decoded paths and gradients, float64.

Both heads read the same encoder: the released ``UnimoModel`` (the hybrid transformer, whose
parity is ``tests/parity/test_mkgformer.py``'s) is stood in by a module returning mmgnn's
:class:`~mmgnn.nn.fusion.HybridEncoder` output, shared by both sides, so what is compared is
the head. Released-code settings: :class:`~mmgnn.models.MKGformerRE` with ``dropout=0`` (the
released forward never applies its ``Dropout(0.5)``), :class:`~mmgnn.models.MKGformerNER`
with ``crf_over="wordpiece"`` and its tags in the released ``LABEL_LIST`` order.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mmgnn.models.mkgformer_ner import MKGformerNER
from mmgnn.models.mkgformer_re import MKGformerRE
from tests.models.text_task_helpers import WORDS, tiny_encoder
from tests.parity.conftest import (
    REFERENCE,
    assert_close,
    copy_params,
    load_reference,
    stub_module,
)

TOL = 1e-10
# MNER/run.py: LABEL_LIST; ids 1.. (0 is PAD)
LABEL_LIST = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC",
              "X", "[CLS]", "[SEP]"]


def unimo_stand_in(encoder):
    """A ``models.modeling_unimo`` whose ``UnimoModel`` returns ``encoder``'s text stream."""
    class UnimoModel(torch.nn.Module):
        def __init__(self, vision_config, text_config):
            super().__init__()
            self.encoder = encoder

        def resize_token_embeddings(self, n):  # mmgnn's model already holds the markers
            assert n == encoder.embeddings.word_embeddings.num_embeddings

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None,
                    pixel_values=None, aux_values=None, rcnn_values=None, return_dict=True):
            return SimpleNamespace(last_hidden_state=self.encoder(input_ids, attention_mask),
                                   pooler_output=None)
    return UnimoModel


def load(system: str, encoder, fix_source=None):
    folder = REFERENCE / "MKGformer" / system / "models"
    shims = {"models": stub_module("models", folder),
             "models.modeling_unimo": stub_module("models.modeling_unimo",
                                                  UnimoModel=unimo_stand_in(encoder))}
    return load_reference(f"MKGformer/{system}/models/unimo_model.py", "models.unimo_model",
                          shims=shims, fix_source=fix_source)


class MarkerTokenizer:
    """What ``UnimoREModel`` asks of its tokenizer: the marker ids and the vocabulary size."""

    def __init__(self, ids: dict[str, int], size: int) -> None:
        self.ids, self.size = ids, size

    def convert_tokens_to_ids(self, token: str) -> int:
        return self.ids[token]

    def __len__(self) -> int:
        return self.size


def grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def test_re_head(float64, one_thread):
    encoder, tokenizer, _ = tiny_encoder(vision=True)
    ours = MKGformerRE(6, encoder=encoder, tokenizer=tokenizer, dropout=0.0).eval()
    ref_mod = load("MRE", encoder)
    released = ref_mod.UnimoREModel(
        6, MarkerTokenizer(ours.marker_ids, ours.vocab_size + 4), SimpleNamespace(device="cpu"),
        SimpleNamespace(), SimpleNamespace(hidden_size=32), {}, {}).eval()
    with torch.no_grad():
        released.classifier.weight.normal_()
        released.classifier.bias.normal_()
    copy_params({ours.classifier.weight: released.classifier.weight,
                 ours.classifier.bias: released.classifier.bias})
    head = torch.tensor([[0, 2], [3, 5], [0, 1]])
    tail = torch.tensor([[4, 8], [1, 2], [1, 2]])
    batch = ours.batch(WORDS, head, tail)
    y = torch.tensor([1, 0, 5])
    loss = ours.loss(batch, y)
    loss.backward()
    ours_logits, ours_grads = ours(batch), grads(ours)
    ours.zero_grad()
    ref_loss, ref_logits = released(input_ids=batch.input_ids,
                                    attention_mask=batch.attention_mask,
                                    token_type_ids=torch.zeros_like(batch.input_ids), labels=y)
    ref_loss.backward()
    ref_grads = grads(released)
    assert ref_logits.dtype == torch.float64
    assert_close(ours_logits, ref_logits, TOL, "RE logits")
    assert_close(loss, ref_loss, TOL, "RE loss")
    for name, g in ours_grads.items():
        assert_close(g, ref_grads[name.replace("encoder.", "model.encoder.", 1)
                                  if name.startswith("encoder.") else name], TOL, name)
    assert any("vision" not in n and "caf" not in n for n in ours_grads)


def _bool_masks(source: str) -> str:
    """``MNER/models/unimo_model.py`` passes ``attention_mask.byte()`` to ``torchcrf``, whose
    ``torch.where(mask, ...)`` needs a bool mask in torch >= 1.2 (uint8 conditions are an
    error now). ``.bool()`` holds the same 0/1 values: the repair changes no number."""
    return source.replace("attention_mask.byte()", "attention_mask.bool()")


def test_ner_head_and_crf(float64, one_thread):
    encoder, tokenizer, _ = tiny_encoder(vision=True)
    ours = MKGformerNER(9, encoder=encoder, tokenizer=tokenizer, crf_over="wordpiece").eval()
    released = load("MNER", encoder, fix_source=_bool_masks).UnimoCRFModel(
        LABEL_LIST, SimpleNamespace(device="cpu"), SimpleNamespace(),
        SimpleNamespace(hidden_size=32)).eval()
    assert released.num_labels == ours.num_labels == 13
    with torch.no_grad():
        for p in released.crf.parameters():
            p.normal_()
    copy_params({ours.fc.weight: released.fc.weight, ours.fc.bias: released.fc.bias,
                 ours.crf.start_transitions: released.crf.start_transitions,
                 ours.crf.end_transitions: released.crf.end_transitions,
                 ours.crf.transitions: released.crf.transitions})
    # tags as ids of LABEL_LIST[:9] (mmgnn's tag k is released label k + 1)
    tags = [torch.tensor([3, 4, 0, 0, 7, 8, 8, 0, 0]), torch.tensor([0, 0, 0, 3, 4, 0]),
            torch.tensor([7, 8])]
    batch = ours.batch(WORDS)
    # the released MMPNERBertDataset labels: [CLS], tag + 1 on a word's first piece, X on its
    # other pieces, [SEP], then ignore_idx 0 (run_mner.sh: --ignore_idx=0)
    labels = torch.zeros_like(batch.input_ids)
    for i, words in enumerate(WORDS):
        row = [LABEL_LIST.index("[CLS]") + 1]
        for word, tag in zip(words, tags[i].tolist(), strict=True):
            n = len(tokenizer.tokenize(word)) or 1
            row += [tag + 1] + [LABEL_LIST.index("X") + 1] * (n - 1)
        row.append(LABEL_LIST.index("[SEP]") + 1)
        labels[i, :len(row)] = torch.tensor(row)
    assert torch.equal(ours.piece_labels(batch, tags), labels)
    loss = ours.loss(batch, tags)
    loss.backward()
    ours_grads = grads(ours)
    ours.zero_grad()
    ours_emissions = ours(batch)
    ours_ll = ours.log_likelihood(batch, tags)
    out = released(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                   token_type_ids=torch.zeros_like(batch.input_ids), labels=labels)
    out.loss.backward()
    ref_grads = grads(released)
    ref_emissions = released.fc(released.dropout(encoder(batch.input_ids,
                                                         batch.attention_mask)))
    assert_close(ours_emissions, ref_emissions, TOL, "NER emissions")
    assert_close(loss, out.loss, TOL, "mean negative CRF log-likelihood")
    ref_ll = released.crf(ref_emissions, labels, mask=batch.attention_mask.bool(),
                          reduction="none")
    assert_close(ours_ll, ref_ll, TOL, "CRF log-likelihood per sentence")
    assert ours.crf.decode(ours_emissions, batch.attention_mask.bool()) == out.logits
    for name, g in ours_grads.items():
        assert_close(g, ref_grads[name.replace("encoder.", "model.encoder.", 1)
                                  if name.startswith("encoder.") else name], TOL, name)
    assert {"fc.weight", "crf.transitions"} <= set(ours_grads)


def test_released_heads_are_where_the_spec_says():
    if not (REFERENCE / "MKGformer").is_dir():
        pytest.skip(f"released reference code not found at {REFERENCE}")
    re_src = (REFERENCE / "MKGformer/MRE/models/unimo_model.py").read_text()
    # the released RE forward defines Dropout(0.5) but never applies it (mmgnn: dropout=0)
    assert "nn.Dropout(0.5)" in re_src and "self.dropout(" not in re_src
    ner_src = (REFERENCE / "MKGformer/MNER/models/unimo_model.py").read_text()
    assert "reduction='mean'" in ner_src and "len(label_list) + 1" in ner_src
