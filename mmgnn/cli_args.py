"""Settings of a run as the user gives them (command line, config file) into a
:class:`~mmgnn.train.config.RunConfig`: short forms of options, the model's keyword arguments
checked against its constructor's signature, and the model's own defaults (its regime,
reciprocal relations, modalities, ``train_defaults``) applied under the user's settings.
Torch-free until a model class is looked up (``mmgnn --help`` imports it)."""

from __future__ import annotations

import argparse
import difflib
import inspect
from pathlib import Path

from mmgnn.models.registry import DATA_ARGUMENTS  # torch-free: names and lazy paths only

#: Models of MKGformer's text tasks, trained by ``mmgnn.recipes.mkgformer_tasks``.
TEXT_TASK_MODELS = ("mkgformer_re", "mkgformer_ner")


class UsageError(ValueError):
    """A misuse of the command line: one ``mmgnn: error:`` line, exit code 2."""


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line."""
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(text).split())


def expand(argv: list[str]) -> list[str]:
    """Short forms to dotted options (``--epochs`` is ``--train.epochs``, ``--dataset``
    ``--data.dataset``, ``--model NAME`` ``--model.name NAME``, ...); ``-`` in names to ``_``."""
    from mmgnn.train.config import DataSpec, TrainConfig

    fields = {**{f: "train" for f in TrainConfig.__dataclass_fields__},
              **{f: "data" for f in DataSpec.__dataclass_fields__}}
    flags = {"reciprocal": ["--model.reciprocal", "true"],
             "deterministic": ["--train.deterministic", "true"]}
    runs = next((a for a in argv if not a.startswith("-")), None) in ("train", "pretrain")
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--data.modalities" and not arg.startswith(("[", "-")):
            arg = f"[{arg}]"  # one name is a list of one
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if not arg.startswith("--"):
            key = None
        elif key in ("model", "modality", "dim"):
            key = "model.dim" if key == "dim" else f"{key}.name"
        elif runs and key in flags:
            out += flags[key]
            continue
        elif runs and key in fields:
            key = f"{fields[key]}.{key}"
        out.append(arg if key is None else f"--{key}{eq}{value}")
    return out


def check_arguments(what: str, target, values: dict, fixed: dict | None = None,
                    also: tuple = (), partial: bool = False) -> dict:
    """``values`` checked against ``target``'s signature and converted to its types (by
    jsonargparse: ``"true"`` for a ``bool`` is :obj:`True`). A ``**kwargs`` beside a
    ``decoder`` name takes that decoder's arguments; ``also`` names more callables that
    ``target``'s ``**kwargs`` reach; ``partial``: the caller fills the required ones."""
    from jsonargparse import ArgumentParser

    targets, skip = [target, *also], set(fixed or {}) | set(DATA_ARGUMENTS)
    params = inspect.signature(target).parameters
    if "decoder" in params and any(q.kind is q.VAR_KEYWORD for q in params.values()):
        from mmgnn.nn.kge import DECODERS

        decoder = {**(fixed or {}), **values}.get("decoder", params["decoder"].default)
        if isinstance(decoder, str) and decoder in DECODERS:
            targets.append(DECODERS.get(decoder)[0])
            skip |= {"hidden_channels"}
    left, known, typed = dict(values), set(), {}
    for t in targets:
        names = {n for n, q in inspect.signature(t).parameters.items()
                 if n not in skip and q.kind not in (q.VAR_KEYWORD, q.VAR_POSITIONAL)}
        known |= names
        parser = ArgumentParser(exit_on_error=False)
        add = parser.add_class_arguments if inspect.isclass(t) else \
            parser.add_function_arguments
        shown = names & set(left) if partial else names
        add(t, skip=set(inspect.signature(t).parameters) - shown, fail_untyped=False,
            sub_configs=False)
        try:
            mine = {n: left.pop(n) for n in names if n in left}
            typed.update({n: parser.parse_object(mine, defaults=False)[n] for n in mine})
        except (argparse.ArgumentError, ValueError) as e:
            raise UsageError(f"{what}: {one_line(e)}") from None
    for key in left:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"{what} takes no argument {key!r}{hint} Known: "
                         f"{', '.join(sorted(known))}")
    return typed


def resolve(explicit: dict):
    """The :class:`~mmgnn.train.config.RunConfig` of the settings the user gave (command line
    and config file; no defaults), with the model's own defaults (``regimes[0]``,
    ``needs_reciprocal``, ``default_modalities``, ``train_defaults``) under them, said in one
    line."""
    from mmgnn.models.registry import MODELS
    from mmgnn.train.config import DataSpec, ModelSpec, RunConfig, TrainConfig

    model = dict(explicit.get("model") or {})
    data, train = dict(explicit.get("data") or {}), dict(explicit.get("train") or {})
    name = MODELS.check(model.pop("name", "transe"))
    cls, fixed = MODELS.get(name)
    said = {("train", k): v for k, v in getattr(cls, "train_defaults", {}).items()
            if k not in train and getattr(TrainConfig, k, None) != v}
    regimes = getattr(cls, "regimes", ()) or (TrainConfig.regime,)
    if train.get("regime", regimes[0]) not in regimes:
        raise UsageError(f"{name} trains with regime {' or '.join(regimes)}, not "
                         f"{train['regime']!r}")
    if "regime" not in train and regimes[0] != TrainConfig.regime:
        said.setdefault(("train", "regime"), regimes[0])
    if getattr(cls, "needs_reciprocal", False):
        if model.get("reciprocal") is False:
            raise UsageError(f"{name} needs reciprocal relations; drop --model.reciprocal false")
        said.update({} if "reciprocal" in model else {("model", "reciprocal"): True})
    if getattr(cls, "needs_modalities", False) and not data.get("modalities"):
        said[("data", "modalities")] = list(getattr(cls, "default_modalities", ()))
    if said:
        print(f"mmgnn: {name} trains with " + ", ".join(f"{k}={v}" for (_, k), v in said.items())
              + " (its defaults; override with " + ", ".join(f"--{s}.{k}" for s, k in said) + ")")
    for (section, key), value in said.items():
        {"data": data, "model": model, "train": train}[section][key] = value
    model = check_arguments(f"model {name}", cls, model, fixed)
    if isinstance(data.get("modality_args"), dict):
        from mmgnn.modalities import MODALITIES

        data["modality_args"] = {m: check_arguments(f"modality {m}", MODALITIES[m], v)
                                 if m in MODALITIES and isinstance(v, dict) else v
                                 for m, v in data["modality_args"].items()}
    if isinstance(train.get("sampler_args"), dict) and train["sampler_args"]:
        from mmgnn.sampling import SAMPLERS

        sampler = SAMPLERS.check(train.get("sampler", TrainConfig.sampler))
        builder = SAMPLERS.get(sampler)[0]
        if sampler == "mmrns":  # its builder's **kwargs are the sampler's own arguments
            from mmgnn.sampling.mmrns import MMRNSSampler
        also = (MMRNSSampler,) if sampler == "mmrns" else ()
        train["sampler_args"] = check_arguments(f"sampler {sampler}", builder,
                                                train["sampler_args"], also=also,
                                                partial=True)
    try:
        return RunConfig(DataSpec(**data), ModelSpec(name, model), TrainConfig(**train))
    except ValueError as e:
        raise UsageError(str(e)) from None


#: What ``--resume`` lets change.
RESUME_MAY_CHANGE = {"out", "resume", "quiet", "config", "data.root", "train.device", "nproc"}


def check_resume(args, explicit: dict) -> None:
    """``--resume`` runs with the saved settings: any other option is an error, not ignored."""
    given = [f"{key}.{k}" if key in ("data", "model", "train") else key
             for key, v in explicit.items() for k in (v if isinstance(v, dict) else [key])]
    extra = sorted(k for k in given if k not in RESUME_MAY_CHANGE)
    if extra:
        raise UsageError(f"--resume continues the run with {Path(args.out) / 'config.json'}; "
                         f"{', '.join('--' + k for k in extra)} would be ignored: drop them, "
                         f"or start a new run with another --out")
    if not (Path(args.out) / "config.json").is_file():
        raise UsageError(f"nothing to resume in {args.out} (no config.json)")


def resolve_k3m(explicit: dict, pretrain: bool, task: str | None, resume: bool):
    """(data, size, model arguments, TrainConfig) of a K3M run: K3M's pretraining or
    fine-tuning optimisation (:data:`~mmgnn.train.config.K3M_PRETRAIN`, ``K3M_FINETUNE``)
    under the user's settings."""
    from mmgnn.models.k3m import K3MConfig
    from mmgnn.train.config import K3M_FINETUNE, K3M_PRETRAIN, TrainConfig

    model, data = dict(explicit.get("model") or {}), dict(explicit.get("data") or {})
    if model.pop("name", "k3m") != "k3m" or task == "link_prediction":
        raise UsageError("--task classification needs --model k3m (and --model k3m trains "
                         "for --task classification)")
    size = model.pop("size", "tiny")
    model = check_arguments("model k3m", K3MConfig, model)
    if set(data) - {"dataset", "root"}:
        raise UsageError(f"K3M runs take --data.dataset and --data.root, not {sorted(data)}")
    try:
        train = None if resume else TrainConfig(
            **{**(K3M_PRETRAIN if pretrain else K3M_FINETUNE), **explicit.get("train", {})})
    except ValueError as e:
        raise UsageError(str(e)) from None
    return data, size, model, train


def resolve_text_task(explicit: dict):
    """(data, model settings with ``name``, TrainConfig) of an ``mkgformer_re`` /
    ``mkgformer_ner`` run: the model's released recipe (``train_defaults``) under the
    user's settings, the model's keys checked against its constructor."""
    from mmgnn.train.config import TrainConfig

    model, data = dict(explicit.get("model") or {}), dict(explicit.get("data") or {})
    name = model.pop("name")
    if name == "mkgformer_re":
        from mmgnn.models.mkgformer_re import MKGformerRE as cls
    else:
        from mmgnn.models.mkgformer_ner import MKGformerNER as cls
    fixed = dict.fromkeys(("num_labels", "num_tags", "encoder", "tokenizer"))
    model = check_arguments(f"model {name}", cls, model, fixed)
    if set(data) - {"dataset", "root"}:
        raise UsageError(f"{name} runs take --data.dataset and --data.root, not {sorted(data)}")
    try:
        train = TrainConfig(**{**cls.train_defaults, **explicit.get("train", {})})
    except ValueError as e:
        raise UsageError(str(e)) from None
    return data, {"name": name, **model}, train
