"""MKGformerNER: the CRF log-likelihood and Viterbi path against a brute force over every tag
path, the released word-piece labels, words past max_length, the CRF's own learning rate."""

from __future__ import annotations

import itertools

import pytest
import torch

from mmgnn.models.mkgformer_ner import MKGformerNER
from tests.models.text_task_helpers import tiny_encoder

SENTENCES = [["Kawhi", "Leonard", "wins", "MVP"], ["New", "York"], ["Blackburn"]]
TAGS = [torch.tensor([1, 2, 0, 1]), torch.tensor([1, 2]), torch.tensor([0])]


def build(**kwargs) -> MKGformerNER:
    encoder, tokenizer, _ = tiny_encoder(vision=kwargs.pop("vision", True))
    torch.manual_seed(1)
    model = MKGformerNER(3, encoder=encoder, tokenizer=tokenizer, **kwargs).eval()
    with torch.no_grad():  # non-trivial transitions (torchcrf draws them in +-0.1)
        for p in model.crf.parameters():
            p.normal_(0, 1)
    return model


def brute_force(emissions: torch.Tensor, crf) -> tuple[torch.Tensor, list[int]]:
    """log Z and the best path of one sentence's emissions (n, T), over all T^n paths."""
    n, t = emissions.shape
    scores, paths = [], list(itertools.product(range(t), repeat=n))
    for y in paths:
        s = crf.start_transitions[y[0]] + crf.end_transitions[y[-1]]
        s = s + sum(emissions[i, y[i]] for i in range(n))
        s = s + sum(crf.transitions[y[i - 1], y[i]] for i in range(1, n))
        scores.append(s)
    scores = torch.stack(scores)
    return torch.logsumexp(scores, 0), list(paths[int(scores.argmax())]), scores, paths


@pytest.mark.parametrize("crf_over", ["word", "wordpiece"])
def test_crf_against_all_tag_paths(one_thread, crf_over):
    model = build(crf_over=crf_over)
    batch = model.batch(SENTENCES)
    emissions = model(batch)
    ll = model.log_likelihood(batch, TAGS)
    mask, gold = model._crf_inputs(batch, TAGS)
    pred = model.predict(batch, [len(s) for s in SENTENCES])
    for i in range(len(SENTENCES)):
        n = int(mask[i].sum())
        if crf_over == "wordpiece" and n > 6:
            continue  # 7^n paths: the word-level case checks the long sentence
        log_z, best, scores, paths = brute_force(emissions[i, :n].detach(), model.crf)
        target = scores[paths.index(tuple(gold[i, :n].tolist()))]
        assert ll[i].item() == pytest.approx((target - log_z).item(), abs=1e-5)
        if crf_over == "word":
            assert pred[i] == best
    assert model.loss(batch, TAGS).item() == pytest.approx(-ll.mean().item(), abs=1e-6)


def test_wordpiece_labels_as_released(one_thread):
    model = build(crf_over="wordpiece")
    assert model.num_labels == 3 + 4
    batch = model.batch([["Kawhi", "Leonard"]])
    labels = model.piece_labels(batch, [torch.tensor([1, 2])])[0].tolist()
    pieces = model.tokenizer.convert_ids_to_tokens(batch.input_ids[0].tolist())
    x, cls, sep = 4, 5, 6
    # [CLS] first-piece: tag + 1, later pieces: X, then [SEP]
    expected = [cls] + [x] * (len(pieces) - 2) + [sep]
    for k, p in enumerate(batch.positions[0].tolist()):
        expected[p] = [1, 2][k] + 1
    assert labels == expected
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]" and len(pieces) > 4  # ka ##wh ##i ...


def test_words_past_max_length_are_O(one_thread):
    model = build(max_length=6)
    batch = model.batch([["Kawhi", "Leonard", "wins", "the", "MVP", "award"]])
    kept = int(batch.position_mask[0].sum())
    assert batch.input_ids.shape[1] <= 6 and 0 < kept < 6
    pred = model.predict(batch, [6])[0]
    assert len(pred) == 6 and pred[kept:] == [0] * (6 - kept)
    # the loss reads only the words that fit
    assert torch.isfinite(model.loss(batch, [torch.tensor([1, 2, 0, 0, 1, 0])]))


def test_no_break_space_keeps_its_word(one_thread):
    model = build()
    batch = model.batch([["a", "\xa0", "b"]])
    assert int(batch.position_mask[0].sum()) == 3


def test_head_lr_group_and_gradients(one_thread):
    model = build(head_lr=0.05).train()
    groups = model.param_groups()["model"]["params"]
    head = {id(p) for p in [*model.fc.parameters(), *model.crf.parameters()]}
    assert {id(p) for p in groups[1]["params"]} == head and groups[1]["lr"] == 0.05
    assert not head & {id(p) for p in groups[0]["params"]}
    model.loss(model.batch(SENTENCES), TAGS).backward()
    vision = ("vision", "caf", "patch", "pre_layernorm")
    # every text-side parameter is reached; without an image the vision side gets nothing
    untouched = [n for n, p in model.named_parameters() if p.grad is None]
    assert untouched and all(any(v in n for v in vision) for n in untouched), untouched
    with pytest.raises(ValueError, match="crf_over must be one of"):
        build(crf_over="tokens")
