import torch

from mmgnn.data.filter import FilterIndex


def test_filter_index_against_python_sets():
    g = torch.Generator().manual_seed(0)
    n, rels = 50, 5
    triples = torch.stack([torch.randint(n, (400,), generator=g),
                           torch.randint(rels, (400,), generator=g),
                           torch.randint(n, (400,), generator=g)], 1)
    index = FilterIndex(triples, n, rels)
    known = {tuple(t) for t in triples.tolist()}
    assert len(index) == len(known)
    h = torch.randint(n, (64,), generator=g)
    r = torch.randint(rels, (64,), generator=g)
    row, tail = index.true_tails(h, r)
    got = {(int(i), int(e)) for i, e in zip(row, tail, strict=True)}
    want = {(i, e) for i in range(64) for e in range(n) if (int(h[i]), int(r[i]), e) in known}
    assert got == want
    row, head = index.true_heads(r, h)  # h used as tails here
    got = {(int(i), int(e)) for i, e in zip(row, head, strict=True)}
    want = {(i, e) for i in range(64) for e in range(n) if (e, int(r[i]), int(h[i])) in known}
    assert got == want
    probe = torch.cat([triples[:20], torch.stack([h, r, h], 1)])
    expected = torch.tensor([tuple(t) in known for t in probe.tolist()])
    assert torch.equal(index.contains(probe), expected)
    assert torch.equal(index.contains(probe.view(2, -1, 3)), expected.view(2, -1))


def test_empty_filter():
    index = FilterIndex(torch.empty(0, 3, dtype=torch.long), 5, 2)
    row, col = index.true_tails(torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert row.numel() == 0 and col.numel() == 0
    assert not index.contains(torch.tensor([[0, 0, 0]])).any()
