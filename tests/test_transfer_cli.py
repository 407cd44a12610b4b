"""A tiny transfer matrix through the CLI (2 candidates × 2 targets × 2 seeds), then `taskmix select` on it.

The tiny random encoder trains a few steps: what is checked is the bookkeeping (cells, shared
intermediate stages, paired gains, report, selection), not what transfers.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from taskmix.cli import main

TINY = {"batch_size": 8, "max_train_examples": 48, "max_dev_examples": 32, "predict_test": False,
        "validate_every": 2, "lr": 0.01}


@pytest.fixture(scope="module")
def transfer_file(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path) -> Path:
    path = tmp_path_factory.mktemp("transfer") / "transfer.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny-transfer", "seeds": [1, 2],
        "experiment": {"encoder": str(tiny_encoder), "threads": 1, "tensorboard": False},
        "candidates": {"cola": "cola", "sts-b": "sts-b"},
        "targets": ["rte", "mrpc"],
        "intermediate": {"max_steps": 2, **TINY},
        "target": {"max_steps": 4, **TINY},
    }))
    return path


@pytest.fixture(scope="module")
def study(transfer_file: Path, data_dir: Path) -> Path:
    out = transfer_file.parent / "study"
    assert main(["transfer", str(transfer_file), "--output-dir", str(out), "--data-dir", str(data_dir),
                 "--no-progress"]) == 0
    return out


def gains_from_store(study_dir: Path) -> dict[tuple[str, str], float]:
    """Mean over seeds of (candidate score − no-intermediate score) × 100, straight from SQLite."""
    scores: dict[tuple[str, str, int], float] = {}
    with sqlite3.connect(study_dir / "results.sqlite") as db:
        for fields, task, score in db.execute(
                "SELECT cells.fields, task, score FROM results JOIN cells USING (cell_id) WHERE is_selected = 1"):
            f = json.loads(fields)
            scores[(f["intermediate"], task, f["seed"])] = score
    per_pair = defaultdict(list)
    for (candidate, task, seed), score in scores.items():
        if candidate != "none":
            per_pair[(candidate, task)].append(100 * (score - scores[("none", task, seed)]))
    return {key: sum(v) / len(v) for key, v in per_pair.items()}


def test_cells_rows_and_shared_intermediate_stages(study: Path) -> None:
    with sqlite3.connect(study / "results.sqlite") as db:
        assert db.execute("SELECT status, COUNT(*) FROM cells GROUP BY status").fetchall() == [("done", 6)]
        assert db.execute("SELECT COUNT(*) FROM results WHERE is_selected = 1").fetchone()[0] == 12
    trained = defaultdict(int)
    for result in (study / "stages").glob("*/result.json"):
        (task,) = json.loads(result.read_text())["restarts"][0]["metrics"]
        trained[task] += 1
    # one intermediate stage per candidate and seed, shared by both targets; each target once per pipeline and seed
    assert trained == {"cola": 2, "sts-b": 2, "rte": 6, "mrpc": 6}


def test_report_matrix_matches_the_store(study: Path) -> None:
    report = (study / "report.md").read_text()
    assert "## Transfer matrix" in report and "### Best candidate per target" in report
    assert (study / "report_files" / "transfer_matrix.png").stat().st_size > 0
    gains = gains_from_store(study)
    for candidate in ("cola", "sts-b"):
        line = next(l for l in report.splitlines() if l.startswith(f"| {candidate} |") and "±" not in l)
        cells = [c.strip() for c in line.strip("|").split("|")]
        shown = [float(re.sub(r"[^0-9.+-]", "", c)) for c in cells[1:3]]
        assert shown == pytest.approx([gains[(candidate, "rte")], gains[(candidate, "mrpc")]], abs=0.051)


def select_output(capsys: pytest.CaptureFixture, *args: str) -> str:
    capsys.readouterr()
    assert main(["select", *args]) == 0
    return capsys.readouterr().out


def scores_of(output: str, method_column: int) -> dict[str, float]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("candidate", ":---"):
            rows[cells[0]] = float(cells[method_column].split(" ")[0])
    return rows


def test_select_with_the_matrix(study: Path, data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    out = select_output(capsys, "--target", "rte", "--matrix", str(study), "--method", "prior,size,random,textemb",
                        "--examples", "32", "--data-dir", str(data_dir))
    gains = gains_from_store(study)
    prior = scores_of(out, 1)
    assert prior == pytest.approx({c: gains[(c, "mrpc")] for c in ("cola", "sts-b")}, abs=0.01)  # rte left out (4 digits shown)
    assert scores_of(out, 2) == {"cola": 8551, "sts-b": 5749}  # training rows
    assert all(-1 <= v <= 1 for v in scores_of(out, 4).values())
    for method in ("prior", "size", "random", "textemb"):
        assert re.search(rf"^{method}: [0-9.]+ s; ", out, re.M)


def test_logme_reuses_the_matrix_intermediates(study: Path, data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    before = sorted(p.name for p in (study / "stages").iterdir())
    out = select_output(capsys, "--target", "mrpc", "--matrix", str(study), "--method", "logme",
                        "--examples", "32", "--data-dir", str(data_dir))
    assert set(scores_of(out, 1)) == {"cola", "sts-b"}
    assert sorted(p.name for p in (study / "stages").iterdir()) == before  # nothing trained


def test_textemb_without_a_matrix(tiny_encoder: Path, data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    out = select_output(capsys, "--target", "rte", "--candidates", "cola,rte", "--method", "textemb",
                        "--encoder", str(tiny_encoder), "--examples", "32", "--data-dir", str(data_dir))
    scores = scores_of(out, 1)
    assert scores["rte"] == pytest.approx(1.0)  # the same inputs as the target: cosine 1
    assert scores["cola"] < 1.0
    assert "textemb: " in out and "rte > cola" in out


def test_evaluate_writes_the_quality_table(study: Path, data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    out = select_output(capsys, "--evaluate", str(study), "--method", "prior,size,random", "--data-dir",
                        str(data_dir))
    assert "| method | targets | NDCG@3 | Regret@1 | Regret@3 |" in out
    saved = json.loads((study / "selection.json").read_text())
    assert [s["method"] for s in saved["summaries"]] == ["prior", "size", "random"]
    assert {o["target"] for o in saved["targets"]} == {"rte", "mrpc"}
    report = (study / "report.md").read_text()
    assert "### Predictor quality (leave one target out)" in report and "| size | 2 |" in report


@pytest.mark.parametrize("args, message", [
    (["--target", "rte", "--candidates", "cola", "--method", "oracle"], "unknown method(s) oracle"),
    (["--target", "rte", "--candidates", "cola", "--method", "prior"], "prior needs a finished transfer matrix"),
    (["--target", "rte", "--candidates", "cola", "--method", "logme"], "pass --matrix"),
    (["--target", "rte", "--candidates", "nosuchtask"], "nosuchtask"),
    (["--target", "rte"], "--candidates is required"),
    (["--target", "rte", "--candidates", "none"], "'none' is reserved"),
    (["--target", "nosuchtarget", "--candidates", "cola"], "nosuchtarget"),
    (["--evaluate", "."], "not a transfer study"),
])
def test_select_errors(args: list[str], message: str, tiny_encoder: Path, data_dir: Path, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["select", *args, "--encoder", str(tiny_encoder), "--data-dir", str(data_dir)]) == 2
    assert message in capsys.readouterr().err


def test_unknown_candidate_fails_before_any_cell(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "candidates": {"x": "nosuchtask"}, "targets": ["rte"]}))
    assert main(["transfer", str(path), "--output-dir", str(tmp_path / "out"), "--data-dir", str(data_dir)]) == 2
    assert "candidates.x" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
