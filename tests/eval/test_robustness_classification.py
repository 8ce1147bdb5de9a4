"""The robustness sweep for a non-ranking task: K3M item classification on K3M-sample, with
token-id inputs (titles missing, knowledge missing, titles swapped)."""

from __future__ import annotations

import pytest
import torch

from mmgnn.eval.robustness import corrupt_features, robustness_sweep
from mmgnn.models.k3m import K3M, K3MConfig
from mmgnn.models.k3m.heads import ItemClassifier
from mmgnn.models.k3m.product_graph import load_k3m_sample


@pytest.fixture(scope="module")
def classifier(data_root):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    graph = load_k3m_sample(data_root)
    model = K3M(K3MConfig.tiny(streams=("title", "knowledge"), fusion="mean")).attach(graph)
    yield ItemClassifier(model, len(graph.category_names)).eval(), graph
    torch.set_num_threads(before)


def test_sweep_with_a_classification_metric(classifier):
    clf, graph = classifier
    model, y = clf.model, graph["entity"].y
    items = torch.arange(40)
    seen = []

    @torch.no_grad()
    def metric() -> dict:
        _, mask, _ = model.modality("text")
        seen.append(int(mask[items].sum()))
        pred = clf(items).argmax(-1)
        return {"accuracy": float((pred == y[items]).float().mean()),
                "present": float(model.modality("text")[1][items].float().mean())}

    clean = {m: model.modality(m) for m in model.modality_names}
    report = robustness_sweep(model, None, ["TMR", "missing:knowledge", "TNR"],
                              [0.0, 0.5, 1.0], features=clean, metric_fn=metric,
                              split="test", progress=False)
    rows = {(r["setting"], r["rate"]): r for r in report.rows}
    assert len(report.rows) == 9 and len(seen) == 7  # rate 0 evaluated once
    assert rows[("missing:text", 1.0)]["present"] == 0.0      # every title gone
    assert rows[("noise:text", 1.0)]["present"] == 1.0        # swapped titles stay "present"
    assert rows[("missing:text", 0.0)]["present"] == 1.0
    assert rows[("missing:text", 0.5)]["affected"] == 250
    with torch.no_grad():
        base = float((clf(items).argmax(-1) == y[items]).float().mean())
    assert rows[("missing:text", 0.0)]["accuracy"] == base
    for m, (x, mask, lengths) in clean.items():  # inputs restored
        got = model.modality(m)
        assert got[0] is x and got[1] is mask and got[2] is lengths
    table = report.format()
    assert "accuracy" in table and "mrr" not in table and "queries" not in report.to_dict()


def test_token_swap_keeps_rows_whole_and_gaussian_is_refused(classifier):
    _, graph = classifier
    x, mask, lengths = graph.features["title"], graph.masks["title"], graph.lengths["title"]
    out = corrupt_features({"text": x}, {"text": mask}, "TNR", 0.3, lengths={"text": lengths})
    ids = out.affected["text"]
    assert len(ids) == 150
    for i in ids[:20].tolist():  # another item's whole title, with its length
        donor = (x == out.features["text"][i]).all(1).nonzero().view(-1)
        assert len(donor) >= 1 and i not in donor.tolist()
        assert out.lengths["text"][i] == lengths[donor[0]]
    with pytest.raises(ValueError, match="token ids"):
        corrupt_features({"text": x}, {"text": mask}, "TNR", 0.3, noise="gaussian")
    with pytest.raises(ValueError, match="needs kg"):
        robustness_sweep(classifier[0].model, None, ["TMR"], [0.0])
