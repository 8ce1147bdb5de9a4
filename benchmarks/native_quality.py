"""NativE against the core's RotatE at the same CPU-time budget, NativE's ablations, time per
step / epoch and peak memory, and a missing-modality sweep: filtered test MRR / Hits@1 /
Hits@10 (both sides, realistic ties).

    export MMGNN_DATA=/path/to/datasets HF_HUB_OFFLINE=1
    python benchmarks/native_quality.py --dataset DB15K --runs rotate native --minutes 4
    # the same for MKG-W, TIVA and KVC16K
    python benchmarks/native_quality.py --dataset DB15K --minutes 4 \\
        --runs native-mean native-no-temperature native-no-comat
    python benchmarks/native_quality.py --dataset FB15k-237 --runs native --minutes 4 \\
        --robustness
    python benchmarks/native_quality.py --table      # prints and writes the table of all rows
    # CPU per training step, side by side in one process (1 thread, interleaved):
    python benchmarks/native_quality.py --speed --dim 64 --negatives 32 --steps 20 \\
        --before 92bda46   # adds RotatE and each NativE form as of that commit as a column

Every run is a fresh process with one torch thread (``--runs`` starts one per name), so the
peak resident memory (``ru_maxrss``) is that run's. The budget counts CPU time
(``budget_clock="cpu"``): the rows of the results file ran up to nine at once on 2 cores
(load 2-11, in the JSON rows), so wall time was up to 5 times longer, and runs compared here
had the same compute. Budgets are 4 CPU-minutes, far from the paper's 1000 epochs: the
numbers compare systems at a small budget, they do not reproduce the paper. NativE's
evaluation builds one fused candidate table per distinct relation of a batch;
:func:`mmgnn.eval.evaluate` groups queries by relation, so that is about one per batch.
Features: text of the entity names (MiniLM-L6 vectors through :mod:`mmgnn.modalities`;
MKG-W's names are bare Wikidata ids, so its "text" carries almost nothing; KVC16K's are
Chinese); FB15k-237: Wikidata label + description, and the numeric attributes. The papers'
image / audio / video features do not exist here. Validation ranks 1,000 and test 3,000
seeded triples of their splits (both sides). ``--robustness`` adds
:func:`mmgnn.eval.robustness.robustness_sweep` on 1,000 seeded test triples at rates 0-1:
``missing:m`` per modality, and with several modalities ``missing:a+b`` (entity-level: the
chosen entities lose all of them) and ``missing:a&b`` (modality-level: each modality loses
that fraction of its entities independently). Rows are appended to
``benchmarks/results/native_quality.jsonl``.

NativE's published row (seeds, RotatE and ComplEx-N3 at equal epochs and equal CPU time) is
``mmgnn reproduce configs/native-db15k.yaml``: its ``reproduce.cpu`` is this file's
``native-every-8`` CPU recipe and ``configs/rotate-db15k.yaml`` is the ``rotate`` run here.
It replaced this driver's ``--reproduce`` (which never wrote a row); ``mmgnn reproduce
--table`` puts the results in the README table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = RESULTS / "native_quality.jsonl"
DATASETS = ("DB15K", "MKG-W", "TIVA", "KVC16K", "FB15k-237")
# Non-structural modalities per dataset (text of the names; FB15k-237: Wikidata label +
# description, and the numeric attributes).
MODALITIES = {"FB15k-237": ["text", "numeric"]}
# gamma of the released scripts (spec NativE.md, section 5); mu 1e-4, L2 1e-5 but on DB15K.
MARGIN = {"DB15K": 12.0, "MKG-W": 4.0, "TIVA": 4.0, "KVC16K": 4.0, "FB15k-237": 9.0}
REGUL = {"DB15K": 0.0, "MKG-W": 1e-5, "TIVA": 1e-5, "KVC16K": 1e-5, "FB15k-237": 1e-5}

# One CPU recipe for RotatE and NativE alike: the released loss (self-adversarial,
# alpha = 2) and bern sampling filtered with the training triples only (rows before this
# release filtered with train + valid + test, which leaked held-out answers), narrower and
# with a larger step than the paper's dim 250 / lr 1e-4 / 1000 epochs so that a few
# CPU-minutes train something.
VALID_SAMPLE, TEST_SAMPLE, ROBUSTNESS_SAMPLE = 1000, 3000, 1000
DIM = 64
COMMON = dict(regime="negative", loss="self_adversarial", adversarial_temperature=2.0,
              margin=0.0, sampler="bernoulli", negative_filter="train", num_negatives=32,
              batch_size=1024, lr=5e-3)
RUNS = {
    "rotate": ("rotate", {}),
    "native": ("native", {}),
    "native-mean": ("native", {"fusion": "mean"}),
    "native-no-temperature": ("native", {"relation_temperature": False}),
    "native-no-comat": ("native", {"adversarial": False}),
    "native-head-gp": ("native", {"penalty": "head"}),
    "native-every-8": ("native", {"adversarial_every": 8}),
}
SPEED_ROWS = RESULTS / "native_speed.jsonl"
# The forms timed by --speed beside RotatE: released CoMAT on every step, CoMAT every 8th step
# (adversarial_every, critic weight x 8), no CoMAT (the KGC part alone).
SPEED_RUNS = ("native", "native-every-8", "native-no-comat")


def config_for(run: str, dataset: str, minutes: float | None, epochs: int | None = None,
               seed: int = 0):
    """``(DataSpec, ModelSpec, TrainConfig)`` of ``run`` on ``dataset``: ``epochs`` epochs
    (no time cap) when given, else ``minutes`` CPU-minutes."""
    from mmgnn.train import DataSpec, ModelSpec, TrainConfig

    model, args = RUNS[run]
    model_args = {"dim": DIM, "margin": MARGIN[dataset], **args}
    if model == "native":
        model_args.setdefault("regularization", REGUL[dataset])
    mods = MODALITIES.get(dataset, ["text"]) if model == "native" else []
    return (DataSpec(dataset, modalities=mods), ModelSpec(model, model_args),
            TrainConfig(**COMMON, epochs=epochs or 100_000, eval_every=0, patience=0,
                        max_minutes=None if epochs else minutes, budget_clock="cpu",
                        seed=seed))


def run_one(run: str, dataset: str, minutes: float | None, robustness: bool,
            out: Path = RESULTS, epochs: int | None = None, seed: int = 0) -> dict:
    from mmgnn.data import load_dataset
    from mmgnn.eval import evaluate
    from mmgnn.eval.robustness import robustness_sweep
    from mmgnn.modalities import attach_modalities
    from mmgnn.models import build_model
    from mmgnn.train import Trainer, seed_everything

    torch.set_num_threads(1)
    data, spec, cfg = config_for(run, dataset, minutes, epochs, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kg = load_dataset(dataset, add_side_info=True)
        # the same memory baseline for all runs
        attach_modalities(kg, MODALITIES.get(dataset, ["text"]), progress=False)
    seed_everything(cfg.seed)  # before the model draws its weights
    # NativE views the modalities named (none named: every one attached).
    extra = {"modality_names": data.modalities or None} if spec.name == "native" else {}
    model = build_model(spec.name, kg, **spec.args, **extra)
    steps = [0]
    inner = model.loss  # the trainer calls it once per step

    def counted(*a, **k):
        steps[0] += 1
        return inner(*a, **k)

    model.loss = counted
    # Validation (once, at the end) and test rank seeded samples: full rankings of every
    # query of DB15K cost minutes of CPU each on the shared machine.
    g = torch.Generator().manual_seed(0)
    valid = kg.valid[torch.randperm(len(kg.valid), generator=g)[:VALID_SAMPLE]]
    test_triples = kg.test[torch.randperm(len(kg.test), generator=g)[:TEST_SAMPLE]]
    trainer = Trainer(model, kg, cfg, progress=False)
    trainer.task.validate = lambda trainer: evaluate(model, kg, "valid", triples=valid,
                                                     progress=False)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit()
    train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
    del model.loss
    t0 = time.perf_counter()
    test = evaluate(model, kg, "test", triples=test_triples, progress=False)
    eval_s = time.perf_counter() - t0
    per_epoch = -(-len(kg.train) // cfg.batch_size)
    step_cpu = train_cpu / max(steps[0], 1)  # includes the validation at the end
    both = test.to_dict()["both"]
    row = {"dataset": dataset, "run": run, "modalities": data.modalities,
           "model_args": {k: v for k, v in spec.args.items() if k != "dim"},
           "dim": spec.args["dim"], "batch": cfg.batch_size,
           "negatives": cfg.num_negatives, "negative_filter": cfg.negative_filter,
           "seed": cfg.seed, "lr": cfg.lr,
           "cpu_minutes": round(train_cpu / 60, 2), "wall_minutes": round(train_wall / 60, 2),
           "steps": steps[0], "epochs_done": round(steps[0] / per_epoch, 2),
           "cpu_s_per_step": round(step_cpu, 3),
           "cpu_min_per_epoch": round(step_cpu * per_epoch / 60, 2),
           "test_triples": len(test_triples), "test_eval_s": round(eval_s, 1),
           "valid_mrr": trainer.best_mrr,
           "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
           "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
           "load_avg": round(os.getloadavg()[0], 1),
           **{k: both[k] for k in ("mrr", "hits@1", "hits@10")},
           "config": {"data": data.to_dict(), "model": spec.to_dict(), "train": cfg.to_dict()}}
    if robustness and spec.name == "native":
        mods = data.modalities
        # one modality: entity- and modality-level coincide; several: each alone, all of a
        # chosen entity (entity-level) and each on its own (modality-level)
        settings = [f"missing:{m}" for m in mods] + (
            [f"missing:{'+'.join(mods)}", f"missing:{'&'.join(mods)}"] if len(mods) > 1 else [])
        report = robustness_sweep(model, kg, settings, [0.0, 0.25, 0.5, 0.75, 1.0],
                                  num_triples=ROBUSTNESS_SAMPLE, progress=False)
        stem = out / f"native_robustness_{dataset.lower().replace('-', '')}_{run}"
        text = report.format()
        print(text)
        stem.with_suffix(".txt").write_text(text + "\n")
        stem.with_suffix(".json").write_text(json.dumps(report.to_dict(), indent=2))
        report.plot(stem.with_suffix(".png"))
        row["robustness"] = [{k: r[k] for k in ("setting", "rate", "affected", "mrr", "hits@10")}
                             for r in report.rows]
    return row


def _module_at(commit: str, relpath: str):
    """The module ``relpath`` of the repository as of ``commit`` (``git show``), loaded on its
    own (its imports are today's mmgnn)."""
    import importlib.util
    import tempfile

    source = subprocess.run(["git", "show", f"{commit}:{relpath}"], check=True,
                            capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout
    name = Path(relpath).stem + "_before"
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_before(commit: str) -> tuple[str, str]:
    """NativE and RotatE (a :class:`~mmgnn.models.KGEModel` with the RotatE decoder) as of
    ``commit``, registered as ``native-at-COMMIT`` and ``rotate-at-COMMIT``."""
    from mmgnn.models import KGEModel, register_model

    native = f"native-at-{commit}"
    register_model(native, _module_at(commit, "mmgnn/models/native.py").NativE)
    old_rotate = _module_at(commit, "mmgnn/nn/kge/rotate.py").RotatE

    def rotate_before(num_entities: int, num_relations: int, dim: int = 200,
                      **decoder_args) -> KGEModel:
        return KGEModel(num_entities, num_relations,
                        old_rotate(num_relations, dim, **decoder_args))

    rotate = f"rotate-at-{commit}"
    register_model(rotate, rotate_before)
    return native, rotate


def _gemm_s(rows: int, inner: int, cols: int, reps: int = 5) -> float:
    """CPU seconds of one float32 ``(rows, inner) @ (inner, cols)`` product, this process,
    the fastest of ``reps``."""
    a, b = torch.randn(rows, inner), torch.randn(inner, cols)
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        a @ b
        best = min(best, time.process_time() - t0)
    return best


def extra_products_s(model, entities: float, batch: int) -> dict[str, float]:
    r"""CPU seconds per step of the matrix products NativE (``model``) computes and RotatE
    does not, each timed at its own shape here (float32, this thread): forward, and the
    products of the backward pass the step takes. ``"projection"``: each modality's MLP
    :math:`W_2 \mathrm{ReLU}(W_1 x + b_1) + b_2` on ``entities`` rows (forward 2, backward
    3: :math:`\partial W_1, \partial W_2, \partial X_2`, plus :math:`\partial X_1` for a
    trainable feature table); ``"logits"``: ReDAF's :math:`\mathbf{w}^\top` on the
    :math:`M` views of those rows (forward, :math:`\partial\mathbf{w}`, the input's
    gradient; the tanh itself not counted); ``"comat"``: one CoMAT step (the critic's
    generator pass without gradient on :math:`2B` rows, the fakes' logits forward and
    backward for the Wasserstein term and the penalty, the generator step's projection and
    logits without gradient on :math:`2B` rows and its generator forward + parameter
    gradients) -- the caller divides it by ``adversarial_every``. Everything else (gathers,
    elementwise terms, the GP's double backward beyond one product) is taken as free: a
    floor."""
    w, views, n = model.channels, model.num_modalities, max(int(round(entities)), 1)
    proj = logits = 0.0
    for m in model.modality_names:
        d = model.modalities.width(m)
        proj += ((3 if m in model.trainable_features else 2) * _gemm_s(n, d, w)
                 + 3 * _gemm_s(n, w, w))
    logits = 3 * _gemm_s(n * views, w, 1)
    comat = 0.0
    gen = model.generator
    if gen is not None:
        z, hid = gen.noise_channels, gen.hidden_channels
        g1 = _gemm_s(2 * batch, z + views * w, hid)
        g2 = _gemm_s(2 * batch, hid, (views - 1) * w)
        fake_logits = _gemm_s(2 * batch * (views - 1), w, 1)
        critic = g1 + g2 + 6 * fake_logits  # generator without grad; Wasserstein + GP logits
        gen_proj = sum(_gemm_s(2 * batch, model.modalities.width(m), w) + _gemm_s(2 * batch, w, w)
                       for m in model.modality_names)
        generator = (gen_proj + _gemm_s(2 * batch * views, w, 1)  # real side, no grad
                     + 2 * g1 + 3 * g2 + 3 * fake_logits)
        comat = critic + generator
    return {"projection": proj, "logits": logits, "comat": comat}


def _remembering(model):
    """``model.loss`` that keeps its batch as ``model.last_batch``."""
    loss = model.loss

    def wrapped(x, batch, loss_fn):
        model.last_batch = batch
        return loss(x, batch, loss_fn)
    return wrapped


def speed(dataset: str, dim: int, negatives: int, steps: int, before: str | None,
          rows_path: Path) -> dict:
    """CPU seconds per training step of RotatE and the NativE forms of :data:`SPEED_RUNS`
    (and each of them as of commit ``before``), one thread, the steps of all runs
    interleaved in this process so that the machine's load hits them alike; means over
    ``steps`` steps after one warm-up step, ratios to RotatE (and with ``before`` to RotatE
    as of that commit too), and each form's floor: RotatE's step plus the products of
    :func:`extra_products_s` (``ratio_floor``: for the distinct entities of the batch;
    ``ratio_floor_all_entities``: for all of them, as NativE computes today)."""
    from mmgnn.data import load_dataset
    from mmgnn.modalities import attach_modalities
    from mmgnn.models import build_model
    from mmgnn.train import TrainConfig, Trainer, seed_everything

    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kg = load_dataset(dataset, add_side_info=True)
        attach_modalities(kg, MODALITIES.get(dataset, ["text"]), progress=False)
    cfg = TrainConfig(**{**COMMON, "num_negatives": negatives}, epochs=1, eval_every=0,
                      patience=0, seed=0)
    runs = {"rotate": ("rotate", {})}
    runs.update({r: RUNS[r] for r in SPEED_RUNS})
    if before:  # RotatE and every NativE form as of that commit too, beside today's
        old_native, old_rotate = _load_before(before)
        runs[old_rotate] = (old_rotate, {})
        runs.update({f"{r}-at-{before}": (old_native, RUNS[r][1]) for r in SPEED_RUNS})
    state = {}
    for run, (model, args) in runs.items():
        seed_everything(0)
        extra = {"modality_names": MODALITIES.get(dataset, ["text"])} \
            if model.startswith("native") else {}
        m = build_model(model, kg, dim=dim, margin=MARGIN[dataset], **args, **extra)
        trainer = Trainer(m, kg, cfg, progress=False)
        m.train()
        state[run] = (trainer, iter(trainer.task.batches(trainer)))
        if run == "native-every-8":  # keeps the batch (negatives drawn inside the task)
            m.loss = _remembering(m)
    times = {run: [] for run in runs}
    distinct = []  # distinct entities of NativE's timed batches (heads, tails, candidates)
    for i in range(steps + 1):
        for run, (trainer, batches) in state.items():
            batch = next(batches)
            t0 = time.process_time()
            terms, _ = trainer.task.loss(trainer, batch)
            trainer.step(terms["loss"])
            times[run].append(time.process_time() - t0)
            if run == "native-every-8" and i:  # the batch its loss saw, counted untimed
                seen = state[run][0].model.last_batch
                distinct.append(len(torch.unique(torch.cat([
                    seen.positives[:, [0, 2]].flatten(),
                    seen.negatives[..., [0, 2]].flatten()]))))
    mean = {run: sum(t[1:]) / steps for run, t in times.items()}  # periodic CoMAT: a mean
    # The floor of NativE / RotatE: RotatE's measured step plus the products NativE computes
    # that RotatE does not, timed here, everything else of NativE free. ``ratio_floor``
    # projects (and takes ReDAF's logits of) only the distinct entities of the batch, the
    # ones the step needs; ``ratio_floor_all_entities`` all N, as the model does today.
    native = state["native-every-8"][0].model
    n_batch = sum(distinct) / len(distinct)
    products = {"batch": extra_products_s(native, n_batch, cfg.batch_size),
                "all": extra_products_s(native, kg.num_entities, cfg.batch_size)}

    def floor(form: str, which: str) -> float:
        every = RUNS[form][1].get("adversarial_every", 1)
        comat = RUNS[form][1].get("adversarial", True)
        e = products[which]
        return (mean["rotate"] + e["projection"] + e["logits"]
                + (e["comat"] / every if comat else 0.0)) / mean["rotate"]

    row = {"dataset": dataset, "dim": dim, "negatives": negatives, "batch": cfg.batch_size,
           "steps": steps, "threads": 1, "load_avg": round(os.getloadavg()[0], 1),
           "cpu_s_per_step": {r: round(v, 4) for r, v in mean.items()},
           "ratio_to_rotate": {r: round(v / mean["rotate"], 2) for r, v in mean.items()},
           **({"ratio_to_rotate_before": {r: round(v / mean[f"rotate-at-{before}"], 2)
                                          for r, v in mean.items()}} if before else {}),
           "distinct_entities": round(n_batch), "num_entities": kg.num_entities,
           "extra_products_s": {k: {p: round(v, 4) for p, v in e.items()}
                                for k, e in products.items()},
           "ratio_floor": {f: round(floor(f, "batch"), 2) for f in SPEED_RUNS},
           "ratio_floor_all_entities": {f: round(floor(f, "all"), 2) for f in SPEED_RUNS},
           "runs": {r: a for r, (_, a) in runs.items()}}
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    with rows_path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return row


def table(rows: list[dict]) -> str:
    head = (f"{'dataset':<9} {'run':<22} {'filter':<10} {'cpu min':>7} {'wall':>5} {'epochs':>6} "
            f"{'cpu s/step':>10} {'cpu min/ep':>10} {'GiB':>5}  {'MRR':>6} {'H@1':>6} "
            f"{'H@10':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['dataset']:<9} {r['run']:<22} {r['negative_filter']:<10} {r['cpu_minutes']:>7.2f} "
            f"{r['wall_minutes']:>5.1f} {r['epochs_done']:>6.2f} {r['cpu_s_per_step']:>10.3f} "
            f"{r['cpu_min_per_epoch']:>10.2f} {r['peak_rss_gib']:>5.2f}  {r['mrr']:>6.4f} "
            f"{r['hits@1']:>6.4f} {r['hits@10']:>6.4f}")
    ratios = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        base = [i for i, r in enumerate(rows) if r["dataset"] == ds and r["run"] == "rotate"]
        for j, r in enumerate(rows):
            same = [i for i in base if rows[i]["negative_filter"] == r["negative_filter"]]
            if same and r["dataset"] == ds and r["run"] == "native":
                b = rows[min(same, key=lambda i: abs(i - j))]  # the RotatE run beside it
                ratios.append(f"{ds} ({r['negative_filter']} filter): NativE / RotatE time "
                              f"per step "
                              f"{r['cpu_s_per_step'] / b['cpu_s_per_step']:.2f}x, peak memory "
                              f"{r['peak_rss_gib'] / b['peak_rss_gib']:.2f}x, MRR "
                              f"{r['mrr'] / max(b['mrr'], 1e-9):.2f}x")
    return "\n".join(lines + [""] + ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="DB15K", choices=DATASETS)
    parser.add_argument("--runs", nargs="+", default=[], choices=sorted(RUNS))
    parser.add_argument("--minutes", type=float, default=2.0, help="CPU-minute budget per run")
    parser.add_argument("--robustness", action="store_true",
                        help="add the missing-modality sweep (native runs)")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int,
                        help="train this many epochs (no time cap) instead of --minutes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed", action="store_true",
                        help="time training steps side by side (rows to native_speed.jsonl)")
    parser.add_argument("--dim", type=int, default=DIM, help="--speed: model width")
    parser.add_argument("--negatives", type=int, default=COMMON["num_negatives"],
                        help="--speed: negatives per positive")
    parser.add_argument("--steps", type=int, default=20, help="--speed: timed steps per run")
    parser.add_argument("--before",
                        help="--speed: also time RotatE and the NativE forms as of this git "
                        "commit")
    parser.add_argument("--table", action="store_true", help="print and write the table")
    parser.add_argument("--rows", type=Path, default=ROWS,
                        help="the JSON-lines file of rows; the table and the robustness "
                        "files go beside it")
    args = parser.parse_args()
    if args.speed:
        speed(args.dataset, args.dim, args.negatives, args.steps, args.before, SPEED_ROWS)
        return
    if args.single:
        args.rows.parent.mkdir(parents=True, exist_ok=True)
        row = run_one(args.runs[0], args.dataset, args.minutes, args.robustness,
                      args.rows.parent, args.epochs, args.seed)
        with args.rows.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(table([row]).splitlines()[2], flush=True)
        return
    for run in args.runs:
        subprocess.run([sys.executable, __file__, "--single", "--dataset", args.dataset,
                        "--minutes", str(args.minutes), "--runs", run, "--rows", str(args.rows),
                        *(["--robustness"] if args.robustness else [])], check=True)
    if args.table or not args.runs:
        rows = [json.loads(line) for line in args.rows.read_text().splitlines()
                if line.strip()]
        rows.sort(key=lambda r: (DATASETS.index(r["dataset"]), r["run"] != "rotate",
                                 r["run"] != "native", r["run"], r["negative_filter"] != "train"))
        text = (f"torch {torch.__version__}, 1 thread per run, {os.cpu_count()} CPUs shared "
                f"with other jobs (load in the JSON rows); CPU-time budgets; filtered test "
                f"metrics, both sides, realistic ties; features in the module "
                f"docstring\n" + table(rows))
        print(text)
        args.rows.with_suffix(".txt").write_text(text + "\n")
        args.rows.with_suffix(".json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
