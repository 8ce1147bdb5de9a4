"""``mmgnn reproduce``: a recipe's seeds run as ``mmgnn train`` runs, their figure checked
against the one the recipe states, baselines at equal epochs and equal CPU time, finished
seeds read back instead of rerun, and the README table written from the results."""

import json
from pathlib import Path

import pytest
import yaml

from mmgnn.cli import main


def _recipe(folder: Path, name: str, toy: Path, model: dict, expect=None, baselines=None,
            tolerance=0.0) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"dataset": str(toy)},
        "model": model,
        "train": {"epochs": 50, "batch_size": 256, "lr": 0.01, "num_negatives": 4,
                  "negative_filter": "train", "eval_every": 0},
        "reproduce": {"system": name.upper(), "features": "structure", "paper": {"mrr": 0.5},
                      "cpu": {"overrides": {"train.epochs": 2}, "seeds": [0, 1],
                              "metric": "mrr", "expect": expect, "tolerance": tolerance},
                      "baselines": baselines or {}}}))
    return path


@pytest.fixture
def recipes(tmp_path, toy_folder):
    base = _recipe(tmp_path, "transe-toy", toy_folder, {"name": "transe", "dim": 16})
    system = _recipe(tmp_path, "distmult-toy", toy_folder, {"name": "distmult", "dim": 16},
                     baselines={"base": str(base)})
    return tmp_path, system, base


def _reproduce(tmp_path, *args) -> int:
    return main(["reproduce", *map(str, args), "--out", str(tmp_path / "runs"), "--results",
                 str(tmp_path / "results"), "--quiet"])


def test_seeds_baselines_and_table(recipes, capsys):
    tmp_path, system, base = recipes
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- reproduce:start -->\nold\n<!-- reproduce:end -->\ntail\n")
    assert _reproduce(tmp_path, system, "--table", "--readme", readme, "--configs_dir",
                      tmp_path) == 0
    rep = json.loads((tmp_path / "results" / "distmult-toy.json").read_text())
    # Two seeds, each the recipe with its CPU override (2 epochs) and its own seed.
    assert [r["seed"] for r in rep["rows"]] == [0, 1]
    values = []
    for row in rep["rows"]:
        folder = Path(row["folder"])
        config = json.loads((folder / "config.json").read_text())
        assert (config["train"]["epochs"], config["train"]["seed"]) == (2, row["seed"])
        values.append(json.loads((folder / "metrics.json").read_text())
                      ["final"]["test"]["both"]["mrr"])
    assert rep["mean"] == pytest.approx(sum(values) / 2)
    assert rep["std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    assert values[0] != values[1]  # the seeds differ
    assert rep["ok"] is None  # no figure stated yet
    # The baseline at equal epochs (its own recipe) and at the system's CPU time.
    eq = rep["baselines"]["base"]
    ep_config = json.loads((Path(eq["epochs"]["rows"][0]["folder"]) / "config.json").read_text())
    assert (ep_config["train"]["epochs"], ep_config["train"]["max_minutes"]) == (2, None)
    cpu_config = json.loads((Path(eq["cpu"]["rows"][0]["folder"]) / "config.json").read_text())
    assert cpu_config["train"]["budget_clock"] == "cpu"
    assert cpu_config["train"]["max_minutes"] == pytest.approx(rep["train_minutes"], abs=1e-3)
    table = readme.read_text()
    assert "old" not in table and table.endswith("<!-- reproduce:end -->\ntail\n")
    # One row (the baseline's recipe is no row of its own), every figure from the json.
    assert "| TRANSE-TOY |" not in table
    (row,) = [line for line in table.splitlines() if line.startswith("| DISTMULT-TOY |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == ["DISTMULT-TOY", "toy", "structure", "0.5", "–"]
    assert cells[5].startswith(f"MRR {rep['mean']:.3f} ± {rep['std']:.3f} (2 seeds, 2 ep, ")
    base = rep["baselines"]["base"]
    assert cells[6].startswith(f"equal epochs {base['epochs']['mean']:.3f} ± "
                               f"{base['epochs']['std']:.3f} (2 seeds, 2 ep, ")
    assert f"; equal CPU {base['cpu']['mean']:.3f} ± {base['cpu']['std']:.3f} (2 seeds" in cells[6]
    assert cells[7:] == ["–", "–"]
    assert f"results `{tmp_path / 'results' / 'distmult-toy.json'}`" in table


def test_finished_seeds_are_read_not_rerun(recipes):
    tmp_path, system, base = recipes
    assert _reproduce(tmp_path, base) == 0
    metrics = tmp_path / "runs" / "transe-toy" / "seed0" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    assert _reproduce(tmp_path, base) == 0
    assert metrics.stat().st_mtime_ns == before



def test_a_run_of_other_settings_is_neither_read_nor_resumed(recipes, capsys):
    tmp_path, _, base = recipes
    assert _reproduce(tmp_path, base) == 0
    metrics = tmp_path / "runs" / "transe-toy" / "seed0" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    spec = yaml.safe_load(base.read_text())
    spec["reproduce"]["cpu"]["overrides"] = {"train.epochs": 3, "model.dim": 16}
    base.write_text(yaml.safe_dump(spec))
    assert _reproduce(tmp_path, base) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "seed0 holds a run of other settings (train.epochs: run 2 != asked 3)" in err
    assert metrics.stat().st_mtime_ns == before
    spec["reproduce"]["cpu"]["overrides"] = {"train.epochs": 2, "model.dim": 16}
    base.write_text(yaml.safe_dump(spec))  # the settings it ran with: read back again
    assert _reproduce(tmp_path, base) == 0
    assert metrics.stat().st_mtime_ns == before


def test_baselines_names_the_arms_that_run(recipes, capsys):
    tmp_path, system, _ = recipes
    assert _reproduce(tmp_path, system, "--baselines", "epochs") == 0
    rep = json.loads((tmp_path / "results" / "distmult-toy.json").read_text())
    assert list(rep["baselines"]["base"]) == ["epochs"]
    assert not (tmp_path / "runs" / "transe-toy@cpu-distmult-toy").exists()
    assert _reproduce(tmp_path, system, "--baselines", "none") == 0
    assert json.loads((tmp_path / "results" / "distmult-toy.json").read_text())[
        "baselines"] == {}
    capsys.readouterr()
    assert _reproduce(tmp_path, system, "--baselines", "cpu,wall") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--baselines takes cpu, epochs" in err


def test_figure_outside_tolerance_fails(recipes, tmp_path, toy_folder, capsys):
    path = _recipe(tmp_path, "wrong", toy_folder, {"name": "transe", "dim": 16}, expect=0.99,
                   tolerance=0.01)
    assert _reproduce(tmp_path, path) == 1
    assert "OUTSIDE the stated figure" in capsys.readouterr().out
    rep = json.loads((tmp_path / "results" / "wrong.json").read_text())
    right = _recipe(tmp_path, "right", toy_folder, {"name": "transe", "dim": 16},
                    expect=round(rep["mean"], 4), tolerance=0.001)
    assert _reproduce(tmp_path, right) == 0  # the same seeds give the same figure


def test_train_ignores_the_reproduce_section(recipes, capsys):
    tmp_path, system, _ = recipes
    assert main(["train", "--config", str(system), "--out", str(tmp_path / "r"),
                 "--dry_run"]) == 0
    assert "reproduce" not in json.loads(capsys.readouterr().out)


def test_misuse_is_one_line(tmp_path, capsys):
    plain = tmp_path / "plain.yaml"
    plain.write_text("data: {dataset: Nations}\n")
    assert _reproduce(tmp_path, plain) == 2
    assert "no `reproduce:` section" in capsys.readouterr().err
    assert _reproduce(tmp_path, tmp_path / "missing.yaml") == 2
    assert _reproduce(tmp_path) == 2
    # a baseline without a recipe stops the command before any run
    system = tmp_path / "system.yaml"
    system.write_text(yaml.safe_dump({"data": {"dataset": "Nations"}, "reproduce": {
        "cpu": {"metric": "mrr"}, "baselines": {"base": str(plain)}}}))
    assert _reproduce(tmp_path, system) == 2
    assert f"{plain}: no `reproduce:` section" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ the table from rows on disk
def _table_recipe(folder: Path, name: str, **reproduce) -> None:
    cpu = {"overrides": {"train.epochs": 6}, "seeds": [0, 1, 2], "metric": "mrr",
           **reproduce.pop("cpu", {})}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump({
        "data": {"dataset": "MKG-W"}, "model": {"name": "rotate", "fusion": "mean"},
        "reproduce": {"system": name.upper(), "features": f"{name} features", "cpu": cpu,
                      **reproduce}}))


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _mmrns(arm, seed, mrr, config, budget="reproduce.cpu.overrides", cpu=1.0, **over):
    return {"dataset": "toyw", "arm": arm, "seed": seed, "config": f"{config}.yaml",
            "budget": budget, "overrides": {"train.epochs": 6, **over}, "epochs": 6,
            "steps": 204, "train_cpu_min": cpu, "mrr": mrr}


@pytest.fixture
def driver_rows(tmp_path):
    """Recipes whose figures are only in driver rows: an MMRNS-like system with a base and
    a pool-uniform baseline (mmrns_reproduce.jsonl), a K3M-like one with a title-only
    baseline (k3m_reproduce.jsonl), a system never run, and released-code rows."""
    configs, rows = tmp_path / "configs", tmp_path / "rows"
    configs.mkdir(), rows.mkdir()
    mmrns = _jsonl(rows / "mmrns_reproduce.jsonl", [
        _mmrns("mmrns", 0, 0.10, "mmrns-toyw", cpu=2.0),
        _mmrns("mmrns", 1, 0.50, "mmrns-toyw", cpu=3.0),  # replaced by the later row of seed 1
        _mmrns("uniform", 0, 0.30, "mmrns-toyw-uniform"),
        _mmrns("pool_uniform", 0, 0.40, "mmrns-toyw-pool-uniform"),
        _mmrns("mmrns", 1, 0.20, "mmrns-toyw", cpu=3.0),
        _mmrns("mmrns", 2, 0.60, "mmrns-toyw", cpu=4.0),
        _mmrns("mmrns", 2, 0.90, "mmrns-toyw", cpu=4.0, **{"model.dim": 8}),  # other settings
        _mmrns("uniform", 0, 0.70, "mmrns-toyw-uniform", "reproduce.cpu.overrides, 3 CPU-min",
               cpu=3.1, **{"train.epochs": 100000, "train.max_minutes": 3}),
    ])
    k3m = _jsonl(rows / "k3m_reproduce.jsonl", [
        {"config": c, "fusion": f, "seed": k, "pretrained": pre, "test_accuracy": acc,
         "pretrain_epochs": 6, "finetune_epochs": 20, "cpu_minutes": 0.5}
        for c, f, k, pre, acc in [("k3m-toy", "mean", 0, True, 0.5),
                                  ("k3m-toy", "mean", 1, True, 0.6),
                                  ("k3m-toy", "hard", 0, True, 0.1),   # not the recipe's fusion
                                  ("k3m-toy", "mean", 1, False, 0.1),  # from scratch
                                  ("k3m-toy-title", "mean", 0, True, 0.3),
                                  ("k3m-toy-title@cpu", "mean", 0, True, 0.35)]])
    released = _jsonl(rows / "mmrns_released.jsonl", [
        {"ratio_released_over_mmgnn": 4.05, "steps_timed": [9, 9]}])
    _table_recipe(configs, "mmrns-toyw", dataset="ToyW", paper={"mrr": 0.35},
                  rows=str(mmrns), released_here={"rows": str(released)},
                  baselines={"base": str(configs / "mmrns-toyw-uniform.yaml"),
                             "pool_uniform": str(configs / "mmrns-toyw-pool-uniform.yaml")})
    _table_recipe(configs, "mmrns-toyw-uniform", dataset="ToyW")
    _table_recipe(configs, "mmrns-toyw-pool-uniform", dataset="ToyW")
    _table_recipe(configs, "k3m-toy", rows=str(k3m), released_here="not runnable here",
                  cpu={"metric": "accuracy", "overrides": {}},
                  baselines={"title_only": "configs/k3m-toy-title.yaml"})
    _table_recipe(configs, "k3m-toy-title", cpu={"metric": "accuracy", "overrides": {}})
    _table_recipe(configs, "never-run")
    return tmp_path, configs, rows


def _table(tmp_path, configs) -> str:
    from mmgnn.cli_reproduce import results_table

    return results_table(tmp_path / "no-results", configs)


def _cells(table: str, system: str) -> list[str]:
    (row,) = [line for line in table.splitlines() if line.startswith(f"| {system} |")]
    return [c.strip() for c in row.strip("|").split("|")]


def test_table_from_driver_rows(driver_rows, capsys):
    import statistics

    tmp_path, configs, rows = driver_rows
    table = _table(tmp_path, configs)
    mmrns = _cells(table, "MMRNS-TOYW")
    # Seeds 0, 1 (its last row), 2 (at the recipe's settings): mean and sample std.
    mean, std = statistics.mean([0.1, 0.2, 0.6]), statistics.stdev([0.1, 0.2, 0.6])
    assert mmrns[:6] == ["MMRNS-TOYW", "ToyW", "mmrns-toyw features", "0.35",
                         "CPU per step 4.05x mmgnn's (1 run of 9 steps); MRR not run",
                         f"MRR {mean:.3f} ± {std:.3f} (3 seeds, 6 ep, 204 steps, 3.00 CPU-min)"]
    assert mmrns[6] == ("equal epochs 0.300 (seed 0, 6 ep, 204 steps, 1.00 CPU-min); "
                        "equal CPU 0.700 (seed 0, 6 ep, 204 steps, 3.10 CPU-min)")
    assert mmrns[7] == "–"  # no ComplEx-N3 baseline
    assert mmrns[8] == "equal epochs 0.400 (seed 0, 6 ep, 204 steps, 1.00 CPU-min)"
    k3m = _cells(table, "K3M-TOY")
    assert k3m[4:] == [
        "not runnable here",
        "accuracy 0.550 ± 0.071 (2 seeds, pretraining 6 ep + 20 ep, 0.50 CPU-min)",
        "title only: equal epochs 0.300 (seed 0, pretraining 6 ep + 20 ep, 0.50 CPU-min); "
        "equal CPU 0.350 (seed 0, pretraining 6 ep + 20 ep, 0.50 CPU-min)",
        "–", "–"]
    assert _cells(table, "NEVER-RUN")[3:] == ["–"] * 6
    for baseline in ("MMRNS-TOYW-UNIFORM", "K3M-TOY-TITLE"):  # baselines are no rows
        assert f"| {baseline} |" not in table
    assert f"results `{rows / 'mmrns_reproduce.jsonl'}`, `{rows / 'mmrns_released.jsonl'}`" \
        in table
    assert "never-run.yaml`; nothing measured yet" in table


def test_table_prefers_reproduce_json_over_driver_rows(driver_rows):
    """A cell comes from one source: `mmgnn reproduce`'s json when it has as many seeds."""
    tmp_path, configs, rows = driver_rows
    results = tmp_path / "results"
    results.mkdir()
    seed = {"test": {"mrr": 0.25}, "epochs": 6, "steps": 204, "train_minutes": 2.5,
            "budget_clock": "cpu"}
    (results / "mmrns-toyw.json").write_text(json.dumps({
        "config": str(configs / "mmrns-toyw.yaml"), "metric": "mrr", "baselines": {},
        "rows": [{"seed": k, **seed} for k in (0, 1, 2)]}))
    from mmgnn.cli_reproduce import results_table

    table = results_table(results, configs)
    assert _cells(table, "MMRNS-TOYW")[5] == \
        "MRR 0.250 ± 0.000 (3 seeds, 6 ep, 204 steps, 2.50 CPU-min)"
    # the baselines, absent from the json, still come from the driver's rows
    assert _cells(table, "MMRNS-TOYW")[6].startswith("equal epochs 0.300 (seed 0")
    assert f"results `{results / 'mmrns-toyw.json'}`, `{rows / 'mmrns_reproduce.jsonl'}`" in table
    # a json of fewer seeds than the driver's rows does not replace them
    (results / "k3m-toy.json").write_text(json.dumps({
        "config": "configs/k3m-toy.yaml", "metric": "accuracy", "baselines": {},
        "rows": [{"seed": 0, "test": {"accuracy": 0.9}, "epochs": 20}]}))
    assert _cells(results_table(results, configs), "K3M-TOY")[5].startswith(
        "accuracy 0.550 ± 0.071 (2 seeds")


@pytest.mark.parametrize("bad, message", [
    ("{not json", "mmrns_reproduce.jsonl:2: not a JSON row"),
    ("[1, 2]", "mmrns_reproduce.jsonl:2: not a JSON object"),
    (json.dumps({"arm": "mmrns", "seed": 0}), "mmrns_reproduce.jsonl:2: a mmrns_reproduce row "
                                              "needs 'dataset', 'config', 'budget'"),
    (json.dumps({**_mmrns("mmrns", "zero", 0.1, "mmrns-toyw")}),
     "mmrns_reproduce.jsonl:2: the seed must be an integer"),
])
def test_malformed_rows_name_the_file(driver_rows, capsys, bad, message):
    tmp_path, configs, rows = driver_rows
    path = rows / "mmrns_reproduce.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], bad, *lines[1:]]) + "\n")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- reproduce:start -->\nold\n<!-- reproduce:end -->\n")
    assert main(["reproduce", "--table", "--configs_dir", str(configs), "--results",
                 str(tmp_path / "none"), "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err
    assert "old" in readme.read_text()  # the README is left as it was


def test_unknown_or_missing_rows_file_is_named(driver_rows, capsys):
    from mmgnn.cli_args import UsageError

    tmp_path, configs, rows = driver_rows
    _table_recipe(configs, "odd", rows=str(rows / "odd.jsonl"))
    with pytest.raises(UsageError, match=r"odd\.yaml: reproduce\.rows names .*odd\.jsonl; the "
                                         r"driver rows read are"):
        _table(tmp_path, configs)
    _table_recipe(configs, "odd", rows=str(rows / "gone" / "k3m_reproduce.jsonl"))
    with pytest.raises(UsageError, match=r"odd\.yaml: reproduce\.rows names .*: no such file"):
        _table(tmp_path, configs)
    (configs / "odd.yaml").unlink()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text(json.dumps({"config": "x.yaml"}))
    from mmgnn.cli_reproduce import results_table

    with pytest.raises(UsageError, match=r"x\.json: a `mmgnn reproduce` result row needs "
                                         r"'metric', 'rows', 'baselines'"):
        results_table(tmp_path / "results", configs)


def test_readme_table_is_the_commands_output(monkeypatch):
    """The README's results table is what `mmgnn reproduce --table` writes from the results
    files in the repository: no figure in it is typed by hand."""
    from mmgnn.cli_reproduce import END, START, results_table

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    readme = (root / "README.md").read_text()
    block = readme.split(START, 1)[1].split(END, 1)[0]
    assert block.strip() == results_table("benchmarks/results/reproduce", "configs").strip(), \
        "README.md's results table is not the output of `mmgnn reproduce --table`: run it"
