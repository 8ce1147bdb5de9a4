import json
import subprocess
import sys

import pytest

from mmgnn.train.config import (
    NEGATIVE_FILTERS,
    SMOOTHING_FORMS,
    DataSpec,
    ModelSpec,
    RunConfig,
    TrainConfig,
    k3m_train_config,
)


@pytest.mark.parametrize("field,value", [
    ("epochs", 0), ("epochs", -1), ("batch_size", 0), ("eval_every", -1), ("patience", -1),
    ("lr", 0.0), ("lr", -1e-3), ("num_negatives", 0), ("max_minutes", 0), ("max_minutes", -2),
    ("scheduler", "step"), ("warmup_ratio", 1.5), ("optimizer", "lion"), ("ties", "random"),
    ("label_smoothing", 1.0), ("eval_batch_size", 0), ("budget_clock", "gpu")])
def test_rejected_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_model_and_data_specs_are_checked():
    with pytest.raises(ValueError, match="model.args.dim"):
        ModelSpec("transe", {"dim": -5})
    with pytest.raises(ValueError, match="model.name"):
        ModelSpec("")
    with pytest.raises(ValueError, match="modality_args"):
        DataSpec("DB15K", modalities=["text"], modality_args={"image": {}})
    with pytest.raises(ValueError, match="not both"):
        TrainConfig(scheduler="linear", warmup_steps=3, warmup_ratio=0.1)
    with pytest.raises(ValueError, match="need a scheduler"):
        TrainConfig(warmup_steps=3)


def test_old_flat_run_folder_reads_into_the_new_shape():
    old = {"dataset": "Nations", "root": "/data", "deterministic": True,
           "train": {"model": "rotate", "dim": 50, "model_args": {"margin": 9.0},
                     "modalities": ["text"], "modality_args": {"text": {"pooling": "cls"}},
                     "reciprocal": True, "filtered_negatives": True, "regime": "1vsall",
                     "lr": 0.01, "epochs": 7}}
    run = RunConfig.from_dict(old)
    assert run.data == DataSpec("Nations", "/data", ["text"], {"text": {"pooling": "cls"}})
    assert run.model == ModelSpec("rotate", {"dim": 50, "reciprocal": True, "margin": 9.0})
    assert (run.train.regime, run.train.lr, run.train.epochs) == ("1vsall", 0.01, 7)
    assert run.train.negative_filter == "all_splits" and run.train.deterministic
    again = RunConfig.from_dict(json.loads(json.dumps(run.to_dict())))
    assert again == run and set(run.to_dict()) == {"data", "model", "train"}
    assert RunConfig.from_dict(old["train"]).model.name == "rotate"  # a bare flat config
    assert ModelSpec.from_dict({"name": "imf", "dim": 256}) == ModelSpec("imf", {"dim": 256})
    with pytest.raises(ValueError, match="unknown run settings"):
        RunConfig.from_dict({"data": {}, "modle": {}})


def test_old_k3m_train_settings():
    cfg, scale = k3m_train_config({"epochs": 3, "batch_size": 8, "lr": 1e-4,
                                   "encoder_lr_scale": 0.2, "weight_decay": 0.01,
                                   "warmup": 0.1, "max_minutes": None, "budget_clock": "wall",
                                   "seed": 0, "device": "cpu"})
    assert scale == 0.2 and cfg.optimizer == "adamw" and cfg.scheduler == "linear"
    assert cfg.warmup_ratio == 0.1 and cfg.epochs == 3


def test_config_module_is_torch_free_and_forms_agree():
    code = "import sys, mmgnn.train.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    from mmgnn import sampling
    from mmgnn.nn import losses

    assert SMOOTHING_FORMS == losses.SMOOTHING_FORMS
    assert NEGATIVE_FILTERS == tuple(sampling.NEGATIVE_FILTERS)
