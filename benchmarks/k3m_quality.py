"""K3M on the real K3M-sample: category accuracy against a text-only and a knowledge-only
baseline, each with and without pretraining at the same CPU-clock budget; the robustness of
the classifiers to missing / noisy titles and missing knowledge beside the paper's figures;
time per pretraining step and peak memory of the tiny and base-size configurations.

    export MMGNN_DATA=/path/to/datasets HF_HUB_OFFLINE=1
    python benchmarks/k3m_quality.py --part quality --pretrain-minutes 1 --finetune-minutes 1
    python benchmarks/k3m_quality.py --part speed            # one process per configuration
    # accuracy against pretraining budget, mean +- std over seeds (split, init, training)
    python benchmarks/k3m_quality.py --part curve --systems k3m --seeds 3 \
        --curve-minutes 0 0.5 1.5 3
    # pretraining losses on held-out items beside a no-context (unigram) floor
    python benchmarks/k3m_quality.py --part heldout --systems k3m text-only
    # the configs/k3m-sample*.yaml recipes (pretraining + classification), 5 seeds, both fusions
    python benchmarks/k3m_quality.py --part reproduce --seeds 5 --fusions hard mean

Task: the stratified category split of :func:`~mmgnn.models.k3m.category_split`
(categories with >= 2 items; 149 train / 94 test items in 72 categories): the sample's own
train/valid rows share too few categories to classify (38 of 100 valid rows have a category
seen in train). Pretraining reads the titles and knowledge of all 500 items (no labels).
Systems share the tiny encoder (random-initialised BERT over the bert-base-chinese
vocabulary, width 32, 2 layers, one co-attention block): ``k3m`` (title + knowledge streams,
hard IIFM, paper-form K3MGATConv), ``text-only`` (the title stream alone, no knowledge),
``knowledge-only`` (the knowledge stream and its aggregation, no title). Every run gets the
same CPU-clock budgets (CPU seconds per torch thread, one thread): ``--pretrain-minutes`` of
pretraining where it pretrains, then ``--finetune-minutes`` of fine-tuning (at most
``--finetune-epochs``); the final model is scored once on the test items. The sample has no
images, so no image stream and no MOM.

``--part reproduce`` runs what ``mmgnn reproduce configs/k3m-sample.yaml`` runs (both stages
per seed through :func:`mmgnn.recipes.k3m.reproduce_seed`, the title-only and knowledge-only
recipes as its baselines) and the variants it does not: each IIFM fusion (``--fusions``) and
the from-scratch control (``--pretrained no``). Its rows (``k3m_reproduce.jsonl``) feed the
README table: ``configs/k3m-sample.yaml`` names them in ``reproduce.rows`` and
``mmgnn reproduce --table`` takes the pretrained rows at the recipe's own fusion.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SYSTEMS = {
    "k3m": {"streams": ("title", "knowledge"), "aggregator": "paper"},
    "text-only": {"streams": ("title",), "aggregator": "none"},
    "knowledge-only": {"streams": ("knowledge",), "aggregator": "paper"},
}
RATES = (0.0, 0.25, 0.5, 0.75, 1.0)
SETTINGS = ("TMR", "missing:knowledge", "TNR")
# K3M's own figures (pics/result_*.png of the release; spec K3M.md section 5): multimodal QA
# Rank@10 (%) of K3M (hard-spl) at 0 / 50 / 100 % rate; item classification ~93 % clean,
# ~86-89 % at 100 % missing / noise (read off plots).
PAPER_QA = {"TMR": (87.2, 79.6, 76.8), "TNR": (87.2, 79.6, 76.5), "IMR": (87.2, 86.6, 86.3)}


def machine() -> str:
    try:
        load = open("/proc/loadavg").read().split()[:3]
    except OSError:
        load = ["?"]
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
            f"thread(s), load average {' '.join(load)} at the start, torch {torch.__version__}")


def pretrain_config(minutes: float, seed: int):
    """The pretraining of every part: K3M's optimiser (AdamW, no decay on biases / norms),
    batch 8, lr 1e-3, no warmup; the linear decay spans 1000 epochs, so the learning rate is
    about constant within the budget."""
    from mmgnn.train import TrainConfig
    from mmgnn.train.config import K3M_PRETRAIN

    return TrainConfig(**{**K3M_PRETRAIN, "epochs": 1000, "batch_size": 8, "lr": 1e-3,
                          "warmup_ratio": 0.0, "max_minutes": minutes, "budget_clock": "cpu",
                          "seed": seed})


def finetune_config(args, seed: int):
    """The fine-tuning of every part: K3M's optimiser, batch 16, lr 3e-3, no warmup."""
    from mmgnn.train import TrainConfig
    from mmgnn.train.config import K3M_FINETUNE

    return TrainConfig(**{**K3M_FINETUNE, "epochs": args.finetune_epochs, "batch_size": 16,
                          "lr": 3e-3, "warmup_ratio": 0.0,
                          "max_minutes": args.finetune_minutes, "budget_clock": "cpu",
                          "seed": seed})


def quality(args) -> None:
    from mmgnn.eval.robustness import robustness_sweep
    from mmgnn.models.k3m import (
        ItemClassifier,
        K3MPretraining,
        build_k3m,
        category_split,
        classification_accuracy,
        load_product_graph,
    )
    from mmgnn.train.k3m import finetune_classification, pretrain

    start_machine = machine()
    graph = load_product_graph("K3M-sample")
    y = graph["entity"].y
    train, test = category_split(y, min_count=2, test_fraction=0.3)
    majority = float((y[test] == y[train].bincount().argmax()).float().mean())
    items = torch.arange(graph.num_entities)
    rows, keep = [], {}
    for name in args.systems:
        for pre in (False, True):
            torch.manual_seed(args.seed)
            model = build_k3m(graph, "tiny", **SYSTEMS[name], fusion=args.fusion)
            row = {"system": name, "pretrained": pre}
            if pre:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    objective = K3MPretraining(model, lp=args.lp)
                t = pretrain(objective, items,
                             pretrain_config(args.pretrain_minutes, args.seed), progress=False)
                row.update(pretrain_steps=t.steps, pretrain_epochs=t.epoch,
                           pretrain_cpu_minutes=round(t.minutes, 3),
                           pretrain_losses={k: round(v, 4) for k, v in t.history[-1].items()
                                            if k not in ("epoch", "steps", "minutes")},
                           skipped=sorted(objective.skipped))
            classifier = ItemClassifier(model, len(graph.category_names))
            f = finetune_classification(classifier, y, train, test,
                                        finetune_config(args, args.seed), progress=False)
            row.update(finetune_epochs=f.epoch, finetune_cpu_minutes=round(f.minutes, 3),
                       test_accuracy=classification_accuracy(classifier, test, y),
                       train_accuracy=classification_accuracy(classifier, train, y),
                       curve=[round(h["test_accuracy"], 4) for h in f.history])
            print(f"{name:<15} pretrained={pre!s:<5} test accuracy {row['test_accuracy']:.4f} "
                  f"(train {row['train_accuracy']:.4f}, {f.epoch} fine-tuning epochs)",
                  flush=True)
            rows.append(row)
            keep[(name, pre)] = classifier

    # Robustness of the pretrained classifiers, corrupting inputs of all items, scoring test.
    sweeps = {}
    for name in ("k3m", "text-only"):
        if (name, True) not in keep:
            continue
        clf = keep[(name, True)].eval()
        model = clf.model
        clean = {m: model.modality(m) for m in model.modality_names}
        settings = [s for s in SETTINGS if not ("knowledge" in s and
                                                "knowledge" not in model.modality_names)]
        report = robustness_sweep(
            model, None, settings, RATES, features=clean, seed=args.seed,
            metric_fn=lambda clf=clf: {"accuracy": classification_accuracy(clf, test, y)},
            progress=False)
        sweeps[name] = report
        print(report.format(), flush=True)

    meta = {"machine": start_machine, "seed": args.seed, "fusion": args.fusion, "lp": args.lp,
            "pretrain_minutes": args.pretrain_minutes,
            "finetune_minutes": args.finetune_minutes, "finetune_epochs": args.finetune_epochs,
            "train_items": len(train), "test_items": len(test),
            "categories": int(len(torch.unique(y[train]))), "majority_accuracy": majority,
            "command": " ".join(sys.argv),
            "pretrain_config": pretrain_config(args.pretrain_minutes, args.seed).to_dict(),
            "finetune_config": finetune_config(args, args.seed).to_dict()}
    lines = [f"K3M category classification on K3M-sample ({len(train)} train / {len(test)} "
             f"test items, {meta['categories']} categories; majority class {majority:.4f})",
             f"budget per run: {args.pretrain_minutes} CPU-min pretraining (where pretrained) "
             f"+ {args.finetune_minutes} CPU-min fine-tuning; tiny encoder, random init",
             f"machine: {meta['machine']}", "",
             f"{'system':<15} {'pretrained':>10} {'test acc':>9} {'train acc':>9} "
             f"{'pre steps':>9} {'ft epochs':>9}"]
    for r in rows:
        lines.append(f"{r['system']:<15} {('yes' if r['pretrained'] else 'no'):>10} "
                     f"{r['test_accuracy']:>9.4f} {r['train_accuracy']:>9.4f} "
                     f"{r.get('pretrain_steps', 0):>9} {r['finetune_epochs']:>9}")
    lines += ["", "robustness (accuracy on the test items; rates over all 500 items; swap "
              "noise = another item's title):"]
    for name, report in sweeps.items():
        lines += [f"[{name}, pretrained]", report.format()]
    lines += ["", "paper (K3M hard-spl, multimodal QA Rank@10 %, rates 0/50/100 %): "
              + "; ".join(f"{k} {'/'.join(map(str, v))}" for k, v in PAPER_QA.items()),
              "paper item classification: ~93 % clean, ~86-89 % at 100 % missing/noise "
              "(read off Fig. 3; full Alibaba data, pretrained bert-base, images)"]
    text = "\n".join(lines)
    print(text)
    args.results.mkdir(exist_ok=True)
    (args.results / "k3m_quality.txt").write_text(text + "\n")
    (args.results / "k3m_quality.json").write_text(json.dumps(
        {**meta, "rows": rows, "robustness": {k: v.to_dict() for k, v in sweeps.items()},
         "paper_qa_rank10": PAPER_QA}, indent=2) + "\n")
    plot(sweeps, args.results / "k3m_robustness.png")


def plot(sweeps: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for name, report in sweeps.items():
        for setting in dict.fromkeys(r["setting"] for r in report.rows):
            rows = [r for r in report.rows if r["setting"] == setting]
            ax.plot([r["rate"] for r in rows], [100 * r["accuracy"] for r in rows],
                    marker="o", linestyle="-" if name == "k3m" else "--",
                    label=f"{name}: {setting}")
    ax.set(xlabel="rate of items corrupted", ylabel="category accuracy (%)",
           title="mmgnn K3M (tiny, K3M-sample)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    for setting, values in PAPER_QA.items():
        bx.plot([0, 0.5, 1.0], values, marker="s", label=setting)
    bx.axhline(93, color="grey", linestyle=":", label="item classification, clean (~93)")
    bx.set(xlabel="rate", ylabel="%", title="paper: K3M multimodal QA Rank@10")
    bx.grid(alpha=0.3)
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def item_geometry(model, items) -> dict:
    """Spread of the item representations c* (eval mode, seeded Gumbel draws): effective
    rank (exp of the entropy of the normalised squared singular values of the centred
    matrix) and the mean cosine similarity between items."""
    was = model.training
    model.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        rep = torch.cat([model(b).item for b in items.split(64)])
    model.train(was)
    s = torch.linalg.svdvals(rep - rep.mean(0))
    p = s**2 / (s**2).sum()
    unit = torch.nn.functional.normalize(rep, dim=-1)
    off = ~torch.eye(len(rep), dtype=torch.bool)
    return {"effective_rank": float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum())),
            "mean_cosine": float((unit @ unit.T)[off].mean())}


def curve(args) -> None:
    """Accuracy against pretraining CPU-minutes, over ``--seeds`` seeds (each: split, init,
    pretraining and fine-tuning seed). One pretraining run per system and seed to the largest
    budget, snapshotting the encoder when the CPU clock passes each smaller one (the
    learning rate is constant, so a snapshot is what a shorter run would give); every
    snapshot is fine-tuned with the recipe of ``--part quality``. Rows of systems not run now
    are kept from the results file, so systems may be run in separate invocations."""
    from mmgnn.models.k3m import (
        ItemClassifier,
        K3MPretraining,
        build_k3m,
        category_split,
        classification_accuracy,
        load_product_graph,
    )
    from mmgnn.train import Trainer
    from mmgnn.train.k3m import PretrainTask, finetune_classification

    class SnapshotPretraining(PretrainTask):
        """Pretraining that snapshots the encoder when the budget clock passes each of
        ``pending`` but the last, before the step that follows."""

        def __init__(self, items, model, pending, snaps) -> None:
            super().__init__(items)
            self.model, self.pending, self.snaps = model, pending, snaps

        def loss(self, trainer, batch):
            while len(self.pending) > 1 and trainer.minutes >= self.pending[0]:
                self.snaps[self.pending.pop(0)] = (
                    {k: v.clone() for k, v in self.model.state_dict().items()}, trainer.steps,
                    trainer.history[-1] if trainer.history else None)
            return super().loss(trainer, batch)

    start_machine = machine()
    graph = load_product_graph("K3M-sample")
    y, items = graph["entity"].y, torch.arange(graph.num_entities)
    budgets = sorted(set(args.curve_minutes))
    rows = []
    for name in args.systems:
        for seed in range(args.seeds):
            train, test = category_split(y, min_count=2, test_fraction=0.3, seed=seed)
            torch.manual_seed(seed)
            model = build_k3m(graph, "tiny", **SYSTEMS[name], fusion=args.fusion)
            snaps = {0.0: ({k: v.clone() for k, v in model.state_dict().items()}, 0, None)}
            if budgets[-1] > 0:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    objective = K3MPretraining(model, lp=args.lp, pv_masking=args.pv_masking)
                pending = [m for m in budgets if m > 0]
                t = Trainer(objective, SnapshotPretraining(items, model, pending, snaps),
                            pretrain_config(budgets[-1], seed), progress=False)
                t.fit()
                snaps[budgets[-1]] = ({k: v.clone() for k, v in model.state_dict().items()},
                                      t.steps, t.history[-1])
            for minutes in budgets:
                state, steps, last = snaps[minutes]
                model.load_state_dict(state)
                geometry = item_geometry(model, items)
                torch.manual_seed(seed)
                clf = ItemClassifier(model, len(graph.category_names))
                f = finetune_classification(clf, y, train, test, finetune_config(args, seed),
                                            progress=False)
                row = {"system": name, "seed": seed, "pretrain_minutes": minutes,
                       "pretrain_steps": steps, "finetune_epochs": f.epoch,
                       "test_accuracy": classification_accuracy(clf, test, y),
                       "train_accuracy": classification_accuracy(clf, train, y),
                       "majority_accuracy": float((y[test] == y[train].bincount().argmax())
                                                  .float().mean()),
                       "last_epoch_losses": None if last is None else {
                           k: round(v, 4) for k, v in last.items()
                           if k not in ("epoch", "steps", "minutes")}, **geometry}
                rows.append(row)
                print(f"{name:<15} seed {seed} pretrain {minutes:>4} CPU-min ({steps:>5} steps)"
                      f"  test {row['test_accuracy']:.4f}  train {row['train_accuracy']:.4f}"
                      f"  eff. rank {geometry['effective_rank']:.1f}", flush=True)
    variant = "" if (args.lp, args.pv_masking) == ("code", "code") else \
        f" (lp={args.lp}, pv={args.pv_masking})"
    path = args.results / "k3m_pretraining_curve.json"
    old = json.loads(path.read_text()) if path.exists() else {"runs": []}
    labels = {name + variant for name in args.systems}
    runs = [r for r in old["runs"] if r["label"] not in labels] + [{
        "system": name, "label": name + variant, "machine": start_machine,
        "command": " ".join(sys.argv),
        "seeds": args.seeds, "lp": args.lp, "pv_masking": args.pv_masking,
        "fusion": args.fusion, "finetune_minutes": args.finetune_minutes,
        "finetune_epochs": args.finetune_epochs,
        "rows": [r for r in rows if r["system"] == name]} for name in args.systems]
    runs.sort(key=lambda r: (list(SYSTEMS).index(r["system"]), r["label"]))
    no_pretraining = {(r["system"], r["seed"]): r["test_accuracy"] for run in runs
                      for r in run["rows"] if r["pretrain_minutes"] == 0}
    lines = ["K3M category accuracy against pretraining budget on K3M-sample (tiny encoder, "
             "random init; test = 30 % of each category with >= 2 items, ~94 items, split "
             "and init seed = seed; fine-tuning: <= 30 epochs, lr 3e-3)",
             "mean +- std over seeds; 'gain' = paired difference to the same seed without "
             "pretraining; eff. rank / cos: the 500 item vectors c* before fine-tuning", ""]
    head = (f"{'system':<15} {'pre min':>7} {'steps':>6} {'test acc':>15} {'gain':>15} "
            f"{'train acc':>9} {'eff.rank':>8} {'cos':>6} {'majority':>8}")
    for run in runs:
        lines += [f"[{run['label']}] lp={run['lp']} pv_masking={run['pv_masking']} "
                  f"seeds={run['seeds']}; {run['machine']}", f"command: {run['command']}",
                  head]
        by = {}
        for r in run["rows"]:
            by.setdefault(r["pretrain_minutes"], []).append(r)
        for minutes, rs in sorted(by.items()):
            acc = torch.tensor([r["test_accuracy"] for r in rs])
            gain = torch.tensor([r["test_accuracy"] - no_pretraining[r["system"], r["seed"]]
                                 for r in rs if (r["system"], r["seed"]) in no_pretraining])

            def ms(t):
                return f"{t.mean():.4f}+-{t.std() if len(t) > 1 else 0:.4f}"

            lines.append(f"{run['system']:<15} {minutes:>7} "
                         f"{sum(r['pretrain_steps'] for r in rs) // len(rs):>6} {ms(acc):>15} "
                         f"{ms(gain) if len(gain) else '':>15} "
                         f"{sum(r['train_accuracy'] for r in rs) / len(rs):>9.4f} "
                         f"{sum(r['effective_rank'] for r in rs) / len(rs):>8.2f} "
                         f"{sum(r['mean_cosine'] for r in rs) / len(rs):>6.3f} "
                         f"{sum(r['majority_accuracy'] for r in rs) / len(rs):>8.4f}")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    args.results.mkdir(exist_ok=True)
    (args.results / "k3m_pretraining_curve.txt").write_text(text + "\n")
    path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    plot_curve(runs, args.results / "k3m_pretraining_curve.png")


def plot_curve(runs: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        by = {}
        for r in run["rows"]:
            by.setdefault(r["pretrain_minutes"], []).append(100 * r["test_accuracy"])
        xs = sorted(by)
        acc = [torch.tensor(by[x]) for x in xs]
        ax.errorbar(xs, [a.mean() for a in acc],
                    yerr=[a.std() if len(a) > 1 else 0 for a in acc], marker="o", capsize=3,
                    label=f"{run['label']} ({run['seeds']} seeds)")
    ax.set(xlabel="pretraining (CPU-minutes, 1 thread)", ylabel="test category accuracy (%)",
           title="K3M-sample: accuracy vs pretraining budget (tiny, random init)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def heldout(args) -> None:
    """Do the pretraining objectives generalise? Pretrains on 400 of the 500 items (the
    recipe of ``--part quality``) and, after every epoch, scores each objective on the 100
    held-out items and on 100 of the pretraining items (eval mode, the same masks every
    time), beside the cross-entropy of a unigram model of the masked tokens (token
    frequencies of the pretraining items, add-0.1 smoothing): the floor that needs no
    context at all."""
    from mmgnn.models.k3m import build_k3m, load_product_graph
    from mmgnn.models.k3m.pretraining import IGNORE, K3MPretraining, mask_values
    from mmgnn.train import Trainer
    from mmgnn.train.k3m import PretrainTask

    class ScoredPretraining(PretrainTask):
        """Pretraining that scores the objectives after every epoch (off the budget)."""

        def __init__(self, items, scores) -> None:
            super().__init__(items)
            self.scores = scores

        def evaluate(self, trainer, last):
            return self.scores()

    start_machine = machine()
    graph = load_product_graph("K3M-sample")
    n = graph.num_entities
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed))
    held, seen = perm[:100].sort().values, perm[100:].sort().values
    results = {}
    for name in args.systems:
        torch.manual_seed(args.seed)
        model = build_k3m(graph, "tiny", **SYSTEMS[name], fusion=args.fusion)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            objective = K3MPretraining(model, lp=args.lp, pv_masking=args.pv_masking)
        # unigram floors: title tokens (all inner ones can be masked) and masked values
        text, unigram = model.text_inputs(torch.arange(n)), {}
        if "title" in text:
            ids, ln = text["title"]
            pos = torch.arange(ids.size(1))
            inner = (pos[None] >= 1) & (pos[None] < ln[:, None] - 1)
            unigram["mlm"] = torch.where(inner, ids, IGNORE)
        if "knowledge" in text:
            ids, ln = text["knowledge"]
            unigram["pv"] = mask_values(ids, model.pair_spans(ids, ln), 103,
                                        args.pv_masking, generator=torch.Generator()
                                        .manual_seed(0))[1]
        floors = {}
        for k, labels in unigram.items():
            fit, ev = labels[seen], labels[held]
            counts = torch.bincount(fit[fit != IGNORE], minlength=model.config.vocab_size)
            logp = (counts.double() + 0.1).log() - (counts.sum() + 0.1 * len(counts)).log()
            floors[k] = {"held": float(-logp[ev[ev != IGNORE]].mean()),
                         "seen": float(-logp[fit[fit != IGNORE]].mean())}

        def evaluate(objective=objective):
            out = {}
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                for tag, part in (("held", held), ("seen", seen[:100])):
                    g = torch.Generator().manual_seed(1)
                    for b in part.split(50):
                        for k, v in objective(b, g).items():
                            if k != "loss":
                                out[f"{tag}_{k}"] = out.get(f"{tag}_{k}", 0.0) + float(v) / 2
            return out

        t = Trainer(objective, ScoredPretraining(seen, evaluate),
                    pretrain_config(args.pretrain_minutes, args.seed), progress=False)
        before = evaluate()
        t.fit()
        results[name] = {"unigram": floors, "before": before, "history": t.history,
                         "steps": t.steps}
        print(name, t.steps, "steps", {k: round(v, 3) for k, v in t.history[-1].items()
                                       if isinstance(v, float)}, flush=True)
    lines = [f"K3M pretraining losses on 100 held-out items vs 100 pretraining items "
             f"(pretraining on 400 items, {args.pretrain_minutes} CPU-min, batch 8, lr 1e-3, "
             f"lp={args.lp}, pv_masking={args.pv_masking}, tiny random-init encoder)",
             f"machine: {start_machine}", f"command: {' '.join(sys.argv)}",
             "unigram = cross-entropy of token frequencies (no context); lp floor = ln 2 = "
             "0.693", ""]
    for name, res in results.items():
        keys = [k for k in ("mlm", "pv", "lp") if f"held_{k}" in res["before"]]
        lines.append(f"[{name}] {res['steps']} steps; " + "; ".join(
            f"unigram {k}: held {f['held']:.3f} / seen {f['seen']:.3f}"
            for k, f in res["unigram"].items()))
        lines.append(f"{'epoch':>5} {'steps':>6} " + " ".join(
            f"{'held ' + k:>9} {'seen ' + k:>9}" for k in keys))
        marks = [{"epoch": 0, "steps": 0, **res["before"]}] + res["history"]
        every = max(1, len(marks) // 12)
        for h in marks[::every] + ([marks[-1]] if (len(marks) - 1) % every else []):
            lines.append(f"{h['epoch']:>5} {h['steps']:>6} " + " ".join(
                f"{h['held_' + k]:>9.3f} {h['seen_' + k]:>9.3f}" for k in keys))
        lines.append("")
    text = "\n".join(lines)
    print(text)
    args.results.mkdir(exist_ok=True)
    (args.results / "k3m_pretraining_heldout.txt").write_text(text + "\n")
    (args.results / "k3m_pretraining_heldout.json").write_text(json.dumps(
        {"machine": start_machine, "command": " ".join(sys.argv), "lp": args.lp,
         "pv_masking": args.pv_masking, "pretrain_minutes": args.pretrain_minutes,
         "results": results}, indent=2) + "\n")


def speed_one(args) -> None:
    """One configuration in this process: prints one JSON line."""
    from mmgnn.models.k3m import K3M, K3MConfig, K3MPretraining, load_product_graph
    from mmgnn.train import TrainConfig, Trainer
    from mmgnn.train.config import K3M_PRETRAIN
    from mmgnn.train.k3m import PretrainTask

    torch.manual_seed(0)
    graph = load_product_graph("K3M-sample")
    streams = ("title", "knowledge")
    if args.image:  # synthetic features, K3M's 36 regions x 2048, to time the full model
        n = graph.num_entities
        from mmgnn.models.k3m import load_k3m_sample

        graph = load_k3m_sample(image=(torch.randn(n, 36, 2048), torch.ones(n).bool()))
        streams = ("title", "knowledge", "image")
    config = getattr(K3MConfig, args.size)(streams=streams)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        objective = K3MPretraining(K3M(config).attach(graph)).to(args.device)
    # K3M's pretraining optimiser as the trainer builds it (the steps below run by hand)
    opt = Trainer(objective, PretrainTask(torch.arange(graph.num_entities)),
                  TrainConfig(**{**K3M_PRETRAIN, "scheduler": "none", "warmup_ratio": 0.0},
                              device=args.device), progress=False).optimizer
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    g = torch.Generator().manual_seed(0)
    times, cpu = [], []
    for step in range(args.warmup + args.steps):
        items = torch.randperm(graph.num_entities, generator=g)[:8]
        t, c = time.perf_counter(), time.process_time()
        loss = objective(items, g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - t)
            cpu.append((time.process_time() - c) / torch.get_num_threads())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    params = sum(p.numel() for p in objective.parameters())
    out = {"size": args.size, "image": args.image, "streams": list(streams),
           "params": params, "batch": 8, "steps": args.steps, "threads":
           torch.get_num_threads(), "seconds_per_step": sum(times) / len(times),
           "cpu_seconds_per_step": sum(cpu) / len(cpu), "peak_rss_mib": rss / 1024,
           "rss_before_steps_mib": rss0 / 1024, "device": args.device}
    if args.device.startswith("cuda"):
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


def speed(args) -> None:
    rows, start_machine = [], machine()
    plan = {"tiny": ("tiny", False, 20), "tiny+image": ("tiny", True, 10),
            "base": ("base", False, 3), "base+image": ("base", True, 2)}
    for size, image, steps in (plan[c] for c in args.configs):
        cmd = [sys.executable, __file__, "--part", "speed-one", "--size", size, "--steps",
               str(steps), "--threads", str(args.threads), "--device", args.device] + \
            (["--image"] if image else [])
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            print(res.stderr[-2000:])
            continue
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    lines = [f"K3M pretraining step (MLM + PV + LP [+ MOM with images]; batch 8, AdamW; random "
             f"init) on {args.device}; {start_machine}",
             "image rows use synthetic 36 x 2048 region features (the sample has no images)",
             f"{'config':<14} {'params':>12} {'s/step':>8} {'CPU s/step':>10} "
             f"{'peak RSS MiB':>12}" + (" peak CUDA MiB" if args.device != "cpu" else "")]
    for r in rows:
        name = r["size"] + ("+image" if r["image"] else "")
        lines.append(f"{name:<14} {r['params']:>12,} {r['seconds_per_step']:>8.3f} "
                     f"{r['cpu_seconds_per_step']:>10.3f} {r['peak_rss_mib']:>12.0f}"
                     + (f" {r['peak_cuda_mib']:>13.0f}" if "peak_cuda_mib" in r else ""))
    text = "\n".join(lines)
    print(text)
    suffix = "" if args.device == "cpu" else "_" + args.device.split(":")[0]
    args.results.mkdir(exist_ok=True)
    (args.results / f"k3m_speed{suffix}.txt").write_text(text + "\n")
    (args.results / f"k3m_speed{suffix}.json").write_text(json.dumps(
        {"machine": start_machine, "rows": rows}, indent=2) + "\n")


def reproduce(args) -> None:
    """The configs' recipe (released pretraining, then classification) for each seed, each
    config (K3M and its title-only / knowledge-only baselines: same recipe, same epochs) and
    each IIFM fusion (``--fusions``: the eval-time choice of issue 17), through
    :func:`mmgnn.recipes.k3m.reproduce_seed`; one jsonl row per run, appended as it lands
    (runs already in the file are skipped), then the mean +- std table."""
    import os
    import tempfile

    from mmgnn.recipes.k3m import reproduce_seed

    rows_path = args.results / "k3m_reproduce.jsonl"
    args.results.mkdir(exist_ok=True)
    done = []
    if rows_path.exists():
        done = [json.loads(line) for line in rows_path.read_text().splitlines() if line]
    key = ("config", "fusion", "seed", "pretrained")
    seen = {tuple(r[k] for k in key) for r in done}
    runs = Path(args.runs or tempfile.mkdtemp(prefix="k3m_reproduce_"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    for seed in range(args.seeds):
        for config in args.recipes:
            for fusion in args.fusions:
                for pre in args.pretrained:
                    name = Path(config).stem + args.tag
                    if (name, fusion, seed, pre) in seen:
                        continue
                    load = os.getloadavg()[0]
                    cpu, wall = time.process_time(), time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        res = reproduce_seed(
                            config, runs / f"{name}-{fusion}-{'pre' if pre else 'scratch'}"
                            f"-seed{seed}", seed,
                            overrides={**args.overrides, "model.fusion": fusion},
                            pretrained=pre)
                    row = {"config": name, "fusion": fusion, "seed": seed, "pretrained": pre,
                           "overrides": args.overrides,
                           **{k: res.get(k) for k in (
                               "test_accuracy", "train_accuracy", "majority_accuracy",
                               "test_items", "pretrain_epochs", "pretrain_steps",
                               "pretrain_losses")},
                           "finetune_epochs": res.get("epochs"),
                           "cpu_minutes": round((time.process_time() - cpu) / 60, 3),
                           "wall_minutes": round((time.perf_counter() - wall) / 60, 3),
                           "load_at_start": load, "threads": torch.get_num_threads(),
                           "commit": commit, "command": " ".join(sys.argv)}
                    with rows_path.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    done.append(row)
                    print(f"{name:<26} {fusion:<5} seed {seed} pretrained={pre!s:<5} "
                          f"test {row['test_accuracy']:.4f} ({row['cpu_minutes']:.2f} CPU-min)",
                          flush=True)
    text = "\n".join([
        "K3M-sample item classification (149 train / 94 test items, 72 categories; majority "
        "class 0.1809): the configs/k3m-sample*.yaml recipes, pretraining at the released "
        "recipe (6 epochs, batch 8, AdamW lr 1e-4, 10% warmup + linear decay, margin LP) on "
        "all 500 items, then 20 epochs of classification (batch 16, lr 3e-3); tiny random-init "
        "encoder, one torch thread; the split is fixed, the seed sets init, masking and order",
        f"rows: {rows_path.name} (one per run, with CPU minutes and load); "
        f"machine: {machine()}", "", reproduce_table(done)])
    print(text)
    (args.results / "k3m_reproduce.txt").write_text(text + "\n")


def eval_noise(args) -> None:
    """The hard-IIFM classifiers of ``--part reproduce`` (their run folders in ``--runs``),
    scored on the test items twice: picking the largest gate (the default) and with the
    released Gumbel draws at evaluation (``eval_noise``; mean over 5 seeded draws). Same
    weights, so the difference is the evaluation alone."""
    from mmgnn.models.k3m import (
        K3M,
        ItemClassifier,
        K3MConfig,
        category_split,
        classification_accuracy,
        load_product_graph,
    )

    graph = load_product_graph("K3M-sample")
    y = graph["entity"].y
    rows = []
    for folder in sorted(Path(args.runs).glob("*-hard-*/classification")):
        saved = json.loads((folder / "config.json").read_text())
        _, test = category_split(y, saved["min_count"], saved["test_fraction"],
                                 saved["split_seed"])
        model = K3M(K3MConfig.from_dict(saved["model"])).attach(graph)
        clf = ItemClassifier(model, len(graph.category_names))
        clf.load_state_dict(torch.load(folder / "model.pt", weights_only=False)["classifier"])
        argmax = classification_accuracy(clf, test, y)
        for f in model.fusion.values():
            f.deterministic_eval = False
        noisy = [classification_accuracy(clf, test, y, seed=s) for s in range(5)]
        rows.append({"run": folder.parent.name, "argmax": argmax,
                     "gumbel_mean": sum(noisy) / len(noisy), "gumbel": noisy})
        print(f"{folder.parent.name:<45} argmax {argmax:.4f}  Gumbel at eval "
              f"{rows[-1]['gumbel_mean']:.4f}", flush=True)
    (args.results / "k3m_reproduce_eval_noise.json").write_text(json.dumps(
        {"machine": machine(), "command": " ".join(sys.argv), "rows": rows}, indent=2) + "\n")


def reproduce_table(rows: list[dict]) -> str:
    """Mean +- std (sample) of the test accuracy per (config, fusion, pretrained)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["config"], r["fusion"], r["pretrained"]), []).append(r)
    lines = [f"{'config':<26} {'fusion':<6} {'pretrained':<10} {'seeds':>5} "
             f"{'test accuracy':>17} {'CPU-min/run':>11}"]
    for (config, fusion, pre), rs in sorted(groups.items()):
        acc = torch.tensor([r["test_accuracy"] for r in rs], dtype=torch.float64)
        std = acc.std().item() if len(acc) > 1 else 0.0
        lines.append(f"{config:<26} {fusion:<6} {str(pre):<10} {len(rs):>5} "
                     f"{acc.mean().item():>8.4f} +- {std:.4f} "
                     f"{sum(r['cpu_minutes'] for r in rs) / len(rs):>11.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("quality", "curve", "heldout", "speed",
                                           "speed-one", "reproduce", "eval-noise"),
                        default="quality",
                        help="quality: the table and robustness; curve: accuracy against "
                        "pretraining budget over --seeds; heldout: pretraining losses on "
                        "held-out items; speed: time and memory per pretraining step")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--pretrain-minutes", type=float, default=1.0)
    parser.add_argument("--finetune-minutes", type=float, default=1.0)
    parser.add_argument("--finetune-epochs", type=int, default=30)
    parser.add_argument("--fusion", default="hard")
    parser.add_argument("--lp", default="code", choices=("code", "margin"))
    parser.add_argument("--pv-masking", default="code", choices=("code", "random"),
                        help="curve / heldout: masked property-value modelling variant")
    parser.add_argument("--seeds", type=int, default=3,
                        help="curve: seeds 0..N-1, each a split, init and training seed")
    parser.add_argument("--curve-minutes", type=float, nargs="+", default=[0, 0.5, 1.5, 3],
                        help="curve: pretraining budgets (CPU-minutes); 0 = no pretraining")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", default="tiny", choices=("tiny", "base"))
    parser.add_argument("--image", action="store_true")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", nargs="+", default=["tiny", "tiny+image", "base"],
                        choices=["tiny", "tiny+image", "base", "base+image"],
                        help="speed: configurations (base+image, the full released model, "
                        "needs > 9 GiB of RAM; default: the other three)")
    parser.add_argument("--recipes", nargs="+", default=[
        str(CONFIGS / f"{n}.yaml") for n in ("k3m-sample", "k3m-sample-title-only",
                                               "k3m-sample-knowledge-only")],
                        help="reproduce: classification configs (each names its pretraining)")
    parser.add_argument("--fusions", nargs="+", default=["hard", "mean"],
                        help="reproduce: IIFM strategies to run each config with")
    parser.add_argument("--pretrained", nargs="+", type=lambda v: v == "yes",
                        default=[True], help="reproduce: yes / no (the from-scratch control)")
    parser.add_argument("--overrides", type=json.loads, default={},
                        help="reproduce: dotted overrides of every recipe, a JSON object "
                        "(e.g. '{\"train.epochs\": 42, \"pretrain.train.epochs\": 13}')")
    parser.add_argument("--tag", default="", help="reproduce: suffix of the rows' config name "
                        "(e.g. @cpu for a run at another budget)")
    parser.add_argument("--runs", help="reproduce: folder of the run folders (default: a "
                        "temporary one)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="folder of the result files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"quality": quality, "curve": curve, "heldout": heldout, "speed": speed,
     "speed-one": speed_one, "reproduce": reproduce, "eval-noise": eval_noise}[args.part](args)


if __name__ == "__main__":
    main()
