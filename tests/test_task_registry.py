"""Task registry, split loading errors and user-defined (YAML) tasks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pydantic
import pytest
import yaml

from taskmix.errors import ConfigError, DataError
from taskmix.tasks import all_tasks, get_task, load_split, register_task, resolve_data_dir
from taskmix.kinds.classification import CLASSIFICATION
from taskmix.kinds.regression import REGRESSION
from taskmix.tasks.custom import CustomTaskSpec, build_custom_task

REPO_ROOT = Path(__file__).resolve().parents[1]

SUBMISSIONS = {
    "cola": {"test": "CoLA.tsv"}, "sst-2": {"test": "SST-2.tsv"}, "mrpc": {"test": "MRPC.tsv"},
    "qqp": {"test": "QQP.tsv"}, "sts-b": {"test": "STS-B.tsv"},
    "mnli": {"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"},
    "qnli": {"test": "QNLI.tsv"}, "rte": {"test": "RTE.tsv"}, "wnli": {"test": "WNLI.tsv"},
    "ax": {"test": "AX.tsv"}, "superglue-rte": {"test": "RTE.jsonl"}, "cb": {"test": "CB.jsonl"},
    "boolq": {"test": "BoolQ.jsonl"}, "wic": {"test": "WiC.jsonl"}, "wsc": {"test": "WSC.jsonl"},
}


@pytest.mark.parametrize(("name", "files"), SUBMISSIONS.items())
def test_submission_files(name: str, files: dict[str, str]) -> None:
    task = get_task(name)
    assert dict(task.submission_files) == files
    assert set(task.test_splits) == set(files)


def test_lookup_ignores_case_and_spelling() -> None:
    assert get_task("STS-B") is get_task("stsb") is get_task("sts_b")
    assert get_task("sst2").name == "sst-2"
    assert get_task("SuperGLUE-RTE").name == "superglue-rte"
    assert {t.name for t in all_tasks()} >= set(SUBMISSIONS) | {"snli"}


def test_unknown_task_lists_known_tasks() -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'rtee'; known tasks: .*\brte\b"):
        get_task("rtee")


def test_definitions_match_glue() -> None:
    mnli = get_task("mnli")
    assert mnli.labels == ("entailment", "neutral", "contradiction")
    assert mnli.dev_splits == ("dev_matched", "dev_mismatched")
    assert mnli.splits["dev_matched"].path == "glue/mnli/dev_matched.tsv"
    assert get_task("qnli").labels == ("entailment", "not_entailment")
    assert get_task("cola").metrics == ("matthews",)
    assert get_task("mrpc").metrics == ("accuracy", "f1")
    stsb = get_task("sts-b")
    assert stsb.kind is REGRESSION and stsb.num_classes == 1
    assert stsb.metrics == ("pearson", "spearman")
    assert get_task("cb").metrics == ("accuracy", "f1_macro")
    assert get_task("ax").hub.name == "ax" and get_task("stsb").hub.name == "stsb"


def test_register_rejects_a_clashing_name() -> None:
    rte = get_task("rte")
    assert register_task(rte) is rte
    with pytest.raises(ConfigError, match="clashes with registered task 'rte'"):
        register_task(replace(rte, name="RTE", description="another"))


def test_unknown_split_lists_splits(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"task 'mnli' has no split 'dev'; .*dev_matched"):
        load_split("mnli", "dev", data_dir)


def test_missing_file_names_task_split_and_path(tmp_path: Path) -> None:
    expected = str(tmp_path / "glue" / "rte" / "train.tsv")
    with pytest.raises(DataError, match=r"task 'rte' split 'train' not found") as error:
        load_split("rte", "train", tmp_path)
    assert str(error.value).startswith(expected)


def test_missing_data_dir_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    expected = r"data directory does not exist .*'rte' split 'dev'"
    with pytest.raises(DataError, match=expected) as error:
        load_split("rte", "dev", missing)
    assert str(missing) in str(error.value)


@pytest.mark.parametrize("content", ["", "index\tsentence1\tsentence2\tlabel\n"])
def test_empty_split(tmp_path: Path, content: str) -> None:
    (tmp_path / "glue" / "rte").mkdir(parents=True)
    (tmp_path / "glue" / "rte" / "dev.tsv").write_text(content)
    with pytest.raises(DataError, match=r"dev\.tsv: no examples in task 'rte' split 'dev'"):
        load_split("rte", "dev", tmp_path)


def test_resolve_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TASKMIX_DATA", raising=False)
    assert resolve_data_dir(None) is None
    monkeypatch.setenv("TASKMIX_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("elsewhere") == Path("elsewhere")


def spec(**overrides: object) -> dict:
    base = {
        "name": "my-nli",
        "kind": "pair_classification",
        "splits": {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"},
        "columns": {"text_a": "premise", "text_b": "hypothesis", "label": "gold", "uid": "id"},
        "labels": ["yes", "no"],
    }
    return base | overrides


def test_custom_task_builds_and_loads(tmp_path: Path) -> None:
    header = "id\tpremise\thypothesis\tgold\n"
    (tmp_path / "train.tsv").write_text(header + "a\tp1\th1\tyes\nb\tp2\th2\tno\n")
    (tmp_path / "dev.tsv").write_text(header + "c\tp3\th3\tno\n")
    (tmp_path / "test.tsv").write_text("id\tpremise\thypothesis\nd\tp4\th4\n")
    task = build_custom_task(CustomTaskSpec.model_validate(spec()), tmp_path)
    assert task.metrics == ("accuracy",) and task.submission_files == {"test": "my-nli.tsv"}
    train = load_split(task, "train", None)  # absolute paths: no data directory needed
    assert [(e.uid, e.text_a, e.text_b, e.label) for e in train] == [
        ("a", "p1", "h1", 0), ("b", "p2", "h2", 1)
    ]
    assert load_split(task, "test", Path("/unused"))[0].label is None


def test_custom_regression_headerless_with_default_metrics(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("x\t0.5\ny\t2\n")
    regression = CustomTaskSpec.model_validate(
        {
            "name": "scores",
            "kind": "regression",
            "header": False,
            "splits": {"train": "train.tsv", "dev": "train.tsv"},
            "columns": {"text_a": 0, "label": 1},
        }
    )
    task = build_custom_task(regression, tmp_path)
    assert task.metrics == ("pearson", "spearman")
    assert [e.label for e in load_split(task, "dev", None)] == [0.5, 2.0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"shuffle": True}, "Extra inputs are not permitted"),
        ({"columns": {"text_a": "premise", "label": "gold"}}, "needs columns.text_b"),
        ({"metrics": ["accuracy", "bleu"]}, r"unknown metric\(s\) bleu"),
        ({"metrics": ["pearson"]}, r"unknown metric\(s\) pearson for a classification"),
        ({"labels": None}, "needs labels"),
        ({"splits": {"train": "train.tsv"}}, "splits needs dev"),
        ({"splits": {"train": "a.txt", "dev": "b.txt"}}, "cannot tell the format"),
        ({"header": False}, "columns must be 0-based field indices"),
        ({"kind": "span_tagging"}, "unknown custom task kind 'span_tagging'; choose from .*pair_classification"),
        ({"format": "squad"}, "a pair_classification task reads format csv, jsonl, tsv, not 'squad'"),
        ({"columns": {"text_a": "p", "text_b": "h", "label": "gold", "spans": "s"}}, "Extra inputs"),
        ({"labels": ["a", "b", "c"], "metrics": ["f1"]}, "f1 needs exactly two labels"),
    ],
)
def test_bad_custom_specs(overrides: dict, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        CustomTaskSpec.model_validate(spec(**overrides))


def test_example_custom_task_file_loads() -> None:
    path = REPO_ROOT / "examples" / "custom_task.yaml"
    [entry] = yaml.safe_load(path.read_text())["custom_tasks"]
    task = build_custom_task(CustomTaskSpec.model_validate(entry), path.parent)
    assert task.metrics == ("accuracy", "f1")
    assert [len(load_split(task, s, None)) for s in ("train", "dev")] == [200, 100]


def test_custom_tasks_redefine_custom_but_never_builtin_tasks():
    import dataclasses

    import pytest

    from taskmix.errors import ConfigError
    from taskmix.tasks import get_task, register_task
    from taskmix.tasks.base import Task

    first = Task(name="toy-redefined", kind=CLASSIFICATION, metrics=("accuracy",), splits={}, labels=("a", "b"))
    second = dataclasses.replace(first, labels=("a", "b", "c"))
    register_task(first, custom=True)
    register_task(second, custom=True)
    assert get_task("toy-redefined").labels == ("a", "b", "c")
    with pytest.raises(ConfigError, match="clashes with registered task 'rte'"):
        register_task(dataclasses.replace(get_task("rte"), labels=("x",)), custom=True)


def test_every_superglue_submission_task_counts_towards_the_superglue_score():
    from taskmix.tasks import all_tasks
    from taskmix.tasks.base import SUPERGLUE

    jsonl = {t.name: t.benchmark for t in all_tasks() if any(f.endswith(".jsonl") for f in t.submission_files.values())}
    diagnostics = {name for name in jsonl if name.startswith("ax-")}
    assert {"wsc", "wic", "boolq", "cb", "copa", "multirc", "record", "superglue-rte"} <= set(jsonl)
    assert {name for name, benchmark in jsonl.items() if benchmark != SUPERGLUE} == diagnostics
