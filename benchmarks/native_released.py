"""NativE's released code (zjukg/NATIVE, ``../shared/reference/NATIVE``) and mmgnn's NativE side
by side on the same data, features, recipe and epochs: time per epoch as a ratio (CPU time, one
thread each, epochs interleaved in one process) and test MRR of each.

    export MMGNN_DATA=/path/to/datasets HF_HUB_OFFLINE=1
    python benchmarks/native_released.py --epochs 2 --seeds 0

What runs:

- **released**: the files of ``../shared/reference/NATIVE/mmkgc`` copied into a temporary
  folder (the reference is never edited), OpenKE's sampler compiled there with ``g++`` as the
  release's ``mmkgc/make.sh`` does (``release/Base.so``), the training triples of mmgnn's
  DB15K written there in OpenKE's format (``h t r``, count first). The 2-modal code
  (``run_adv_wgan_gp.py``: ``AdvRelRotatE``, ``CombinedGenerator``, ``NegativeSamplingGP`` with
  ``SigmoidLoss``, ``WCGTrainerGP``) trains through its own ``WCGTrainerGP.run`` one epoch at a
  time, on the CPU (``.cuda()`` made a no-op in this process), its sampler with one thread.
- **mmgnn**: :class:`~mmgnn.models.NativE` in the released forms (``penalty="released"``,
  ``critic_through_generator=True``, CoMAT every step), trained by mmgnn's trainer steps.

Features: DB15K has no image features here, so both get the entity-name text (MiniLM-L6,
384-d) as *both* of the 2-modal code's inputs (``img_emb`` and ``text_emb``; mmgnn: modalities
``image`` and ``text`` holding the same table). Recipe: the CPU recipe of
``benchmarks/native_quality.py`` (dim 64, 32 negatives, batch 1024, Adam 5e-3 for both
optimisers, margin 12, mu 1e-4, adversarial temperature 2, L2 1e-5 as ``run_adv_wgan_gp.py``).
Sampling differs by design: OpenKE draws each batch with replacement, mmgnn shuffles.

Evaluation: the released ``Tester`` scores every test triple against all entities one forward
at a time, hours on this CPU; instead both trained models are ranked by mmgnn's evaluator
(filtered, both sides, realistic ties) on the same 3,000 seeded test triples, the released
weights copied into an mmgnn NativE with the mapping of ``tests/parity/test_native.py``
(which shows the two score identically). Rows go to
``benchmarks/results/native_released.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "NATIVE"
RESULTS = Path(__file__).resolve().parent / "results"
ROWS = RESULTS / "native_released.jsonl"
DIM, NEGATIVES, BATCH, LR, MARGIN, MU, REGUL = 64, 32, 1024, 5e-3, 12.0, 1e-4, 1e-5
TEST_SAMPLE = 3000


def build_release(work: Path) -> Path:
    """Copy the released package into ``work`` and compile its sampler as ``make.sh`` does."""
    if not (REFERENCE / "mmkgc").is_dir():
        raise FileNotFoundError(f"{REFERENCE / 'mmkgc'}: the released NativE code is missing "
                                f"(see ../shared/reference/README.md)")
    shutil.copytree(REFERENCE / "mmkgc", work / "mmkgc")
    (work / "mmkgc" / "release").mkdir()
    subprocess.run(["g++", "./base/Base.cpp", "-fPIC", "-shared", "-o", "./release/Base.so",
                    "-pthread", "-O3", "-march=native"], cwd=work / "mmkgc", check=True)
    return work


def write_openke(kg, folder: Path) -> None:
    """mmgnn's training triples in OpenKE's files (only the counts of entities and relations
    are read from their files)."""
    folder.mkdir(parents=True)
    (folder / "entity2id.txt").write_text(
        f"{kg.num_entities}\n" + "".join(f"e{i}\t{i}\n" for i in range(kg.num_entities)))
    (folder / "relation2id.txt").write_text(
        f"{kg.num_relations}\n" + "".join(f"r{i}\t{i}\n" for i in range(kg.num_relations)))
    rows = [f"{h} {t} {r}\n" for h, r, t in kg.train.tolist()]
    (folder / "train2id.txt").write_text(f"{len(rows)}\n" + "".join(rows))


def mmgnn_native(kg, features: torch.Tensor):
    """NativE in the released forms over the two copies of the text table."""
    from mmgnn.modalities import ModalityStore
    from mmgnn.models import NativE

    store = ModalityStore({"image": features, "text": features})
    return NativE(kg.num_entities, kg.num_relations, store, "rotate", dim=DIM, margin=MARGIN,
                  mu=MU, penalty="released", critic_through_generator=True,
                  regularization=REGUL)


@torch.no_grad()
def released_into_mmgnn(ref, ref_gen, ours) -> None:
    """The explicit weight mapping of ``tests/parity/test_native.py``."""
    pairs = [(ours.entity.weight, ref.ent_embeddings.weight),
             (ours.decoder.rel_emb.weight, ref.rel_embeddings.weight),
             (ours.fusion.attention.weight, ref.ent_attn.weight),
             (ours.fusion.gate.weight, ref.rel_gate.weight)]
    for m, proj in (("image", ref.img_proj), ("text", ref.text_proj)):
        for i in (0, 2):
            pairs += [(ours.projections[m][i].weight, proj[i].weight),
                      (ours.projections[m][i].bias, proj[i].bias)]
    for i in (0, 2):
        pairs += [(ours.generator.net[i].weight, ref_gen.generator.generator_model[i].weight),
                  (ours.generator.net[i].bias, ref_gen.generator.generator_model[i].bias)]
    for a, b in pairs:
        a.copy_(b)


def run(seed: int, epochs: int, work: Path) -> dict:
    from mmgnn.data import load_dataset
    from mmgnn.eval import evaluate
    from mmgnn.modalities import attach_modalities
    from mmgnn.train import TrainConfig, Trainer, seed_everything

    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kg = load_dataset("DB15K", add_side_info=True)
        text = attach_modalities(kg, ["text"], progress=False)["text"].x.float()
    data = work / "benchmarks" / "DB15K"
    if not data.is_dir():
        write_openke(kg, data)
    # the released code is GPU-only: .cuda() is the identity in this process
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    sys.path.insert(0, str(work))
    from mmkgc.adv.modules import CombinedGenerator
    from mmkgc.config import WCGTrainerGP
    from mmkgc.data import TrainDataLoader
    from mmkgc.module.loss import SigmoidLoss
    from mmkgc.module.model import AdvRelRotatE
    from mmkgc.module.strategy import NegativeSamplingGP

    # released: as run_adv_wgan_gp.py, the sampler with one thread, on the CPU
    torch.manual_seed(seed)
    loader = TrainDataLoader(in_path=f"{data}/", batch_size=BATCH, threads=1,
                             sampling_mode="normal", bern_flag=1, filter_flag=1,
                             neg_ent=NEGATIVES, neg_rel=0)
    ref = AdvRelRotatE(ent_tot=loader.get_ent_tot(), rel_tot=loader.get_rel_tot(), dim=DIM,
                       margin=MARGIN, epsilon=2.0, img_emb=text.clone(), text_emb=text.clone())
    strategy = NegativeSamplingGP(model=ref, loss=SigmoidLoss(adv_temperature=2.0),
                                  batch_size=loader.get_batch_size(), regul_rate=REGUL)
    ref_gen = CombinedGenerator(noise_dim=64, structure_dim=2 * DIM, img_dim=2 * DIM)
    released = WCGTrainerGP(model=strategy, data_loader=loader, train_times=1, alpha=LR,
                            use_gpu=False, opt_method="Adam", generator=ref_gen, lrg=LR, mu=MU)
    # mmgnn: the same recipe through its trainer's steps
    seed_everything(seed)
    ours = mmgnn_native(kg, text)
    cfg = TrainConfig(regime="negative", loss="self_adversarial", adversarial_temperature=2.0,
                      margin=0.0, sampler="bernoulli", negative_filter="train",
                      num_negatives=NEGATIVES, batch_size=BATCH, lr=LR, epochs=epochs,
                      eval_every=0, patience=0, seed=seed)
    trainer = Trainer(ours, kg, cfg, progress=False)
    times = {"released": [], "mmgnn": []}
    for _ in range(epochs):
        t0 = time.process_time()
        released.run()  # one epoch (train_times=1); the optimisers persist across calls
        times["released"].append(time.process_time() - t0)
        ours.train()
        t0 = time.process_time()
        for batch in trainer.task.batches(trainer):
            terms, _ = trainer.task.loss(trainer, batch)
            trainer.step(terms["loss"])
        times["mmgnn"].append(time.process_time() - t0)
    g = torch.Generator().manual_seed(0)
    test = kg.test[torch.randperm(len(kg.test), generator=g)[:TEST_SAMPLE]]
    ref_as_ours = mmgnn_native(kg, text)
    released_into_mmgnn(ref, ref_gen, ref_as_ours)
    metrics = {}
    for name, model in (("released", ref_as_ours), ("mmgnn", ours)):
        both = evaluate(model.eval(), kg, "test", triples=test, progress=False).to_dict()["both"]
        metrics[name] = {k: both[k] for k in ("mrr", "hits@1", "hits@10")}
    epoch_s = {k: sum(v) / len(v) for k, v in times.items()}
    return {"dataset": "DB15K", "seed": seed, "epochs": epochs, "dim": DIM,
            "negatives": NEGATIVES, "batch": BATCH, "lr": LR, "mu": MU, "regul": REGUL,
            "features": "entity-name text (MiniLM-L6) as both img_emb and text_emb",
            "test_triples": len(test), "threads": 1,
            "load_avg": round(os.getloadavg()[0], 1),
            "cpu_s_per_epoch": {k: round(v, 1) for k, v in epoch_s.items()},
            "epoch_ratio_mmgnn_to_released": round(epoch_s["mmgnn"] / epoch_s["released"], 3),
            **{f"{k}_{m}": v for k, d in metrics.items() for m, v in d.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rows", type=Path, default=ROWS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="native_released_") as tmp:
        work = build_release(Path(tmp))
        for seed in args.seeds:
            row = run(seed, args.epochs, work)
            args.rows.parent.mkdir(parents=True, exist_ok=True)
            with args.rows.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
