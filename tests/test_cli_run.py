"""End-to-end runs through the CLI on the real data, with tiny limits so they finish in seconds.

The STILTs run uses the bundled MiniLM, as the main example does; the others check plumbing
(restarts, checkpoints, outputs, mixtures, heads) on the tiny random encoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from taskmix.cli import main

REPO = Path(__file__).resolve().parents[1]

TINY = {"max_steps": 3, "batch_size": 8, "max_train_examples": 48, "max_dev_examples": 40, "predict_test": False}


def write_experiment(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(tmp_path: Path, data: dict, data_dir: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "run"
    code = main(["run", str(write_experiment(tmp_path, data)), "--data-dir", str(data_dir),
                 "--output-dir", str(out), "--no-progress", *extra])
    return code, out


def test_stilts_two_pipelines_share_the_intermediate_stage(tmp_path, data_dir, capsys):
    data = {
        "name": "tiny_stilts",
        "stages": [
            {"name": "intermediate", "tasks": [{"name": "snli", "train_splits": ["dev"], "dev_split": "test"}], **TINY},
            {"name": "target", "tasks": ["rte", "sts-b"], "separate": True, "restarts": 2, **TINY},
        ],
        "pipelines": [["target"], ["intermediate", "target"]],
    }
    code, out = run(tmp_path, data, data_dir)
    assert code == 0
    printed = capsys.readouterr().out
    assert "| minilm |" in printed and "| minilm → snli |" in printed
    results = json.loads((out / "results.json").read_text())
    rows = {(t["pipeline"], t["task"]) for t in results["targets"]}
    assert rows == {(p, t) for p in ("minilm", "minilm → snli") for t in ("rte", "sts-b")}
    for target in results["targets"]:
        assert len(target["restart_scores"]) == 2
        assert target["summary"]["max"] == max(target["restart_scores"])
    # the intermediate stage ran once and both target stages wrote their own outputs
    assert (out / "pretrained" / "intermediate" / "checkpoint.pt").exists()
    for prefix in ("pretrained", "intermediate"):
        metrics = json.loads((out / prefix / "target" / "rte" / "metrics.json").read_text())
        assert len(metrics["restarts"]) == 2
        assert (out / prefix / "target" / "rte" / "predictions" / "rte-dev.tsv").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["name"] == "tiny_stilts"
    assert (out / "log.txt").read_text().strip()


def test_restarts_draw_fresh_subsamples_and_select_best_on_dev(tmp_path, data_dir, tiny_encoder):
    data = {"encoder": str(tiny_encoder), "stages": [{"name": "target", "tasks": ["rte"], "restarts": 3, **TINY}]}
    code, out = run(tmp_path, data, data_dir)
    assert code == 0
    metrics = json.loads((out / "pretrained" / "target" / "metrics.json").read_text())
    scores = [r["score"] for r in metrics["restarts"]]
    assert metrics["selected_restart"] == scores.index(max(scores))
    assert len({r["seed"] for r in metrics["restarts"]}) == 3


def test_test_predictions_in_glue_format_and_evaluate_command(tmp_path, data_dir, tiny_encoder, capsys):
    data = {"encoder": str(tiny_encoder),
            "stages": [{"name": "target", "tasks": ["wnli"], **{**TINY, "predict_test": True}}]}
    code, out = run(tmp_path, data, data_dir)
    assert code == 0
    lines = (out / "pretrained" / "target" / "submission" / "WNLI.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 147
    assert {line.split("\t")[1] for line in lines[1:]} <= {"0", "1"}
    capsys.readouterr()
    checkpoint = out / "pretrained" / "target" / "checkpoint.pt"
    assert main(["evaluate", str(checkpoint), "--tasks", "wnli", "--data-dir", str(data_dir)]) == 0
    table = capsys.readouterr().out
    assert "| wnli |" in table


def test_checkpoint_restores_best_dev_model(tmp_path, data_dir, tiny_encoder):
    """The saved checkpoint reproduces the selected restart's dev metric."""
    from taskmix.evaluate import evaluate_checkpoint

    data = {"encoder": str(tiny_encoder),
            "stages": [{"name": "target", "tasks": ["rte"], **{**TINY, "max_dev_examples": None}}]}
    code, out = run(tmp_path, data, data_dir, "--set", "precision=fp32")
    assert code == 0
    metrics = json.loads((out / "pretrained" / "target" / "metrics.json").read_text())
    accuracy = metrics["restarts"][0]["metrics"]["rte"]["accuracy"]
    table = evaluate_checkpoint(out / "pretrained" / "target" / "checkpoint.pt", ["rte"], data_dir, None)
    assert f"accuracy={100 * accuracy:.1f}" in table


def test_custom_task_from_yaml_trains_and_evaluates(tmp_path, data_dir, tiny_encoder):
    example = REPO / "examples" / "custom_task.yaml"
    out = tmp_path / "custom"
    code = main(["run", str(example), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress",
                 "--set", "stages.0.max_steps=3", "--set", "stages.0.batch_size=8", "--set", f"encoder={tiny_encoder}"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    (target,) = results["targets"]
    assert target["task"] == "my-paraphrase"
    assert set(target["metrics"]) == {"accuracy", "f1"}


def test_mixture_stage_then_target(tmp_path, data_dir, tiny_encoder):
    """{SNLI, RTE} -> RTE: a two-task stage followed by target-only fine-tuning."""
    data = {
        "encoder": str(tiny_encoder),
        "stages": [
            {"name": "mtl", "tasks": [{"name": "snli", "train_splits": ["dev"], "dev_split": "test"}, "rte"],
             "mixture": {"sampling": "proportional"}, **TINY},
            {"name": "target", "tasks": ["rte"], **TINY},
        ]
    }
    code, out = run(tmp_path, data, data_dir)
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert [t["pipeline"] for t in results["targets"]] == [f"{tiny_encoder.name} → {{snli, rte}}"]
    mtl = json.loads((out / "pretrained" / "mtl" / "metrics.json").read_text())
    assert set(mtl["restarts"][0]["scores"]) == {"snli", "rte"}


def test_three_task_mixture_heterogeneous_batches(tmp_path, data_dir, tiny_encoder):
    data = {
        "encoder": str(tiny_encoder),
        "stages": [{
            "name": "mtl", "tasks": ["rte", "mrpc", "sts-b"],
            "mixture": {"sampling": {"name": "power", "alpha": 0.5}, "loss_scaling": "log_classes",
                        "batching": "heterogeneous", "tasks_per_step": 3},
            **TINY,
        }]
    }
    code, out = run(tmp_path, data, data_dir)
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert {t["task"] for t in results["targets"]} == {"rte", "mrpc", "sts-b"}


@pytest.mark.parametrize("keep_heads", [True, False])
def test_heads_discarded_between_stages_unless_kept(tmp_path, data_dir, tiny_encoder, keep_heads):
    """With a vanishing second-stage LR the second head equals its starting point: kept or fresh."""
    data = {
        "encoder": str(tiny_encoder),
        "stages": [
            {"name": "first", "tasks": ["rte"], "keep_heads": keep_heads, **TINY},
            {"name": "second", "tasks": ["rte"], **{**TINY, "lr": 1e-30, "max_steps": 1}},
        ],
    }
    code, out = run(tmp_path, data, data_dir)
    assert code == 0
    first = torch.load(out / "pretrained" / "first" / "checkpoint.pt", weights_only=False)["state_dict"]
    second = torch.load(out / "first" / "second" / "checkpoint.pt", weights_only=False)["state_dict"]
    same_head = torch.allclose(first["heads.rte.out.weight"], second["heads.rte.out.weight"])
    assert same_head is keep_heads
    assert torch.allclose(first["encoder.model.embeddings.word_embeddings.weight"],
                          second["encoder.model.embeddings.word_embeddings.weight"])


def test_eval_batch_size_sets_inference_batches_and_prediction_files_reuse_validation(tmp_path, data_dir,
                                                                                      tiny_encoder, monkeypatch):
    """`eval_batch_size` reaches every inference pass; in fp32 the dev predictions do not depend on
    it; the dev prediction file is the best validation's predictions, not a second pass."""
    import taskmix.training.predict as predict_module

    sizes: list[int] = []
    original = predict_module.sorted_batches

    def recording(lengths, batch_size):
        sizes.append(batch_size)
        return original(lengths, batch_size)

    monkeypatch.setattr(predict_module, "sorted_batches", recording)
    predictions = {}
    for rows in (5, 64):
        sizes.clear()
        data = {"encoder": str(tiny_encoder), "eval_batch_size": rows, "precision": "fp32",
                "stages": [{"name": "target", "tasks": ["mrpc"], **TINY}]}
        (tmp_path / str(rows)).mkdir()
        code, out = run(tmp_path / str(rows), data, data_dir)
        assert code == 0
        assert sizes == [rows]  # one validation (after the last step) and no further dev pass
        stage_dir = out / "pretrained" / "target"
        predictions[rows] = (stage_dir / "predictions" / "mrpc-dev.tsv").read_text()
        rows_out = [line.split("\t") for line in predictions[rows].splitlines()[1:]]
        accuracy = json.loads((stage_dir / "metrics.json").read_text())["restarts"][0]["metrics"]["mrpc"]["accuracy"]
        assert len(rows_out) == 40 and sum(p == gold for _, p, gold in rows_out) / 40 == pytest.approx(accuracy)
    assert predictions[5] == predictions[64]
