"""Run folders: the data of a run and a finished run's best model, as ``mmgnn train`` wrote
them (``config.json``, ``best.pt``); what ``mmgnn evaluate``, ``export`` and ``robustness``
read, and a Python user too."""

from __future__ import annotations

import json
from pathlib import Path

from mmgnn.data import MultiModalKG
from mmgnn.models import LinkPredictor, build_model
from mmgnn.models.registry import MODELS
from mmgnn.train.config import DataSpec, RunConfig
from mmgnn.utils.io import load_checkpoint


def load_run_data(data: DataSpec, model_name: str, progress: bool = True) -> MultiModalKG:
    """The graph of ``data``, with its modalities built (or read from the feature cache); the
    side texts are read too when the modalities or the model (``needs_side_info``, e.g.
    MKGformer, which encodes the descriptions itself) need them."""
    from mmgnn.data import load_dataset  # looked up at call time (tests replace it)
    from mmgnn.modalities import attach_modalities

    model_cls = MODELS.get(model_name)[0]
    kg = load_dataset(data.dataset, root=data.root, add_side_info=bool(data.modalities)
                      or getattr(model_cls, "needs_side_info", False))
    if data.modalities:
        attach_modalities(kg, data.modalities, data.modality_args, progress=progress)
    if data.subset:
        from mmgnn.data.subsets import subset_graph

        kg = subset_graph(kg, **data.subset)
    return kg


def load_run(folder: str | Path, root: str | None = None
             ) -> tuple[RunConfig, MultiModalKG, LinkPredictor]:
    """``(settings, graph, model with best.pt's weights)`` of the finished run in ``folder``;
    ``root`` replaces the dataset root it was trained with."""
    folder = Path(folder)
    for name in ("config.json", "best.pt"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found; is {folder} a run folder of a "
                                    f"`mmgnn train --out {folder}` that finished an epoch?")
    run = RunConfig.from_dict(json.loads((folder / "config.json").read_text()))
    run.data.root = root or run.data.root
    kg = load_run_data(run.data, run.model.name, progress=False)
    model = build_model(run.model.name, kg, **run.model.args)
    model.load_state_dict(load_checkpoint(folder / "best.pt")["model"])
    return run, kg, model


def final_evaluation(trainer, kg: MultiModalKG, out_dir: str | Path, ties: str = "realistic",
                     progress: bool = True) -> dict:
    """Ranks valid and test with the best validation weights (``best.pt`` in ``out_dir``),
    prints the tables and adds them to ``metrics.json`` as ``final``; returns the results.
    The last step of ``mmgnn train``: the only time a run looks at the test split. With
    several ranks every rank ranks its share (sharded) and rank 0 prints and writes."""
    from mmgnn.eval import evaluate
    from mmgnn.train.distributed import is_main
    from mmgnn.utils.io import save_json

    out_dir = Path(out_dir)
    trainer.model.load_state_dict(load_checkpoint(out_dir / "best.pt",
                                                  map_location=trainer.device)["model"])
    results = {s: evaluate(trainer.model, kg, s, ties=ties, progress=progress)
               for s in ("valid", "test")}
    if is_main():
        print(*(r.format() for r in results.values()), sep="\n")
        save_json(out_dir / "metrics.json",
                  {**trainer.metrics(), "final": {s: r.to_dict() for s, r in results.items()}})
    return results
