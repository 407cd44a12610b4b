"""The rest of SuperGLUE and CommonsenseQA: readers, metrics against hand-computed values, features,
heads, the SuperGLUE score column, and a tiny full SuperGLUE run whose submission files are checked
against the official format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from taskmix.cli import main
from taskmix.errors import DataError
from taskmix.kinds.entity_choice import ENTITY_CHOICE, EntityChoiceFeatures, EntityChoiceHead
from taskmix.kinds.grouped_classification import GROUPED_CLASSIFICATION, GroupedSplit
from taskmix.metrics import compute_metrics
from taskmix.models.encoder import EncoderOutput
from taskmix.results_table import results_table
from taskmix.study.analysis import SUPERGLUE_AVG, glue_tables
from taskmix.targets import TargetResult
from taskmix.tasks import all_tasks, get_task, load_split
from taskmix.tasks.base import SUPERGLUE
from taskmix.tasks.custom import CustomTaskSpec
from taskmix.text_answers import best_exact_match, best_f1, normalize_answer, token_f1
from taskmix.training.features import TokenCache

FIXTURES = Path(__file__).parent / "data"


def bad_line(path: Path, good: dict, bad: dict) -> Path:
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    return path


def assert_names_file_and_line(error: pytest.ExceptionInfo, name: str, line: int = 2) -> None:
    assert name in str(error.value) and f":{line}:" in str(error.value)


# -- answer texts ---------------------------------------------------------------------------------

def test_squad_normalisation_and_token_f1() -> None:
    assert normalize_answer("The  Eiffel-Tower, in PARIS!") == "eiffeltower in paris"
    assert normalize_answer("an apple a day") == "apple day"
    # "eiffel tower" vs "the tower of eiffel": common {eiffel, tower}; P = 2/2, R = 2/3 -> F1 = 0.8
    assert token_f1("Eiffel Tower", "the tower of Eiffel") == pytest.approx(0.8)
    assert token_f1("a", "the") == 0.0  # both normalise to nothing: no shared token (SQuAD v1.1)
    assert best_exact_match("paris.", ["Berlin", "Paris"]) == 1.0 and best_exact_match("x", []) == 0.0
    assert best_f1("red car", ["a red bike", "car"]) == pytest.approx(2 / 3)


# -- CommonsenseQA ---------------------------------------------------------------------------------

def test_commonsenseqa_reader_on_the_real_files(data_dir: Path) -> None:
    task = get_task("commonsenseqa")
    train, dev, test = (load_split(task, s, data_dir) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (9741, 1221, 1140)
    first = dev[0]
    assert first.context.startswith("A revolving door is convenient for two direction travel")
    assert first.choices == ("bank", "library", "department store", "mall", "new york")
    assert first.label == 0 and first.uid == "1afa02df02c908a558b4036e80242fac"
    assert all(e.label is None for e in test) and {e.label for e in train} == {0, 1, 2, 3, 4}
    assert task.submission_files == {}  # no submission file the leaderboard would take


def test_commonsenseqa_reader_names_file_and_line(tmp_path: Path) -> None:
    choices = [{"label": k, "text": k.lower()} for k in "ABCDE"]
    good = {"answerKey": "B", "id": "x", "question": {"stem": "q?", "choices": choices}}
    reader = get_task("commonsenseqa").splits["dev"].reader
    with pytest.raises(DataError, match="answerKey 'F'|label 'F'") as caught:
        reader(bad_line(tmp_path / "dev.jsonl", good, {**good, "answerKey": "F"}))
    assert_names_file_and_line(caught, "dev.jsonl")
    with pytest.raises(DataError, match="expected") as caught:
        reader(bad_line(tmp_path / "dev.jsonl", good, {**good, "question": {"stem": "q", "choices": choices[:4]}}))
    assert_names_file_and_line(caught, "dev.jsonl")


# -- MultiRC ---------------------------------------------------------------------------------------

def test_multirc_reader_on_official_format_files() -> None:
    task = get_task("multirc")
    dev = load_split(task, "dev", FIXTURES)
    assert [e.uid for e in dev] == ["0-0-0", "0-0-1", "0-0-2", "0-1-3", "0-1-4", "1-2-5", "1-2-6"]
    assert [e.label for e in dev] == [1, 0, 1, 1, 0, 1, 0]
    assert dev[0].text_a == "Sent 1: Tom has a red car. Sent 2: He drives it to work every day."
    assert dev[0].text_b == "What colour is Tom's car? Red" and dev[3].meta["group"] == "0-1"
    test = load_split(task, "test", FIXTURES)
    assert len(test) == 5 and all(e.label is None for e in test)


def test_multirc_reader_names_file_and_line(tmp_path: Path) -> None:
    good = json.loads((FIXTURES / "superglue/multirc/val.jsonl").read_text().splitlines()[0])
    bad = json.loads(json.dumps(good))
    del bad["passage"]["questions"][1]["answers"][0]["label"]
    with pytest.raises(DataError, match="MultiRC.*'label'") as caught:
        get_task("multirc").splits["dev"].reader(bad_line(tmp_path / "val.jsonl", good, bad))
    assert_names_file_and_line(caught, "val.jsonl")


def test_multirc_f1a_and_exact_match_by_hand() -> None:
    task = get_task("multirc")
    labels = np.array([[1, 0], [0, 0], [1, 0], [1, 1], [0, 1], [1, 2], [0, 2]])
    predictions = np.array([1, 0, 0, 1, 0, 1, 1])
    # answer options: TP rows 0, 3, 5; FP row 6; FN row 2 -> P = R = 3/4, F1a = 3/4.
    # questions: 0 misses row 2, 1 is all right, 2 errs on row 6 -> EM = 1/3.
    metrics = compute_metrics(task, predictions, labels)
    assert metrics == {"multirc_f1a": pytest.approx(0.75), "multirc_em": pytest.approx(1 / 3)}


def test_multirc_features_keep_questions_through_cache_and_concatenation(minilm_tokenizer, tmp_path: Path) -> None:
    task = get_task("multirc")
    train, dev = (GROUPED_CLASSIFICATION.featurize(load_split(task, s, FIXTURES), minilm_tokenizer, 48)
                  for s in ("train", "dev"))
    assert isinstance(dev, GroupedSplit) and dev.labels.tolist() == [
        [1, 0], [0, 0], [1, 0], [1, 1], [0, 1], [1, 2], [0, 2]]
    batch = dev.collate(np.array([0, 3]), pad_id=0)
    assert batch["labels"].tolist() == [1, 1]  # the head sees labels only
    assert isinstance(dev.subset(np.array([6, 0])), GroupedSplit)
    both = GROUPED_CLASSIFICATION.concatenate([train, dev])
    assert len(set(both.labels[:9, 1]) & set(both.labels[9:, 1])) == 0  # questions of the parts stay apart
    cache = TokenCache(tmp_path)
    cache.store("k", dev)
    loaded = cache.load("k", task)
    assert isinstance(loaded, GroupedSplit) and np.array_equal(loaded.labels, dev.labels)


# -- ReCoRD ----------------------------------------------------------------------------------------

def test_record_reader_on_official_format_files() -> None:
    dev = load_split(get_task("record"), "dev", FIXTURES)
    assert [e.uid for e in dev] == ["0", "1", "2"]
    berlin, eiffel, both = dev
    assert berlin.candidates == ("Berlin", "Germany", "Spree")  # "Berlin" mentioned three times, kept once
    assert berlin.answers == ("Berlin",) and both.answers == ("Paris", "Eiffel Tower")
    assert eiffel.passage.endswith("Paris.\n- The Eiffel Tower stands in Paris")
    assert all(e.answers is None for e in load_split(get_task("record"), "test", FIXTURES))


@pytest.mark.parametrize(("change", "message"), [
    (lambda row: row["passage"]["entities"].append({"start": 90, "end": 400}), "outside the passage"),
    (lambda row: row["qas"][0].update(query="no blank here"), "no @placeholder"),
    (lambda row: row["qas"][0].pop("answers"), "'answers'"),
])
def test_record_reader_names_file_and_line(tmp_path: Path, change, message: str) -> None:
    good = json.loads((FIXTURES / "superglue/record/val.jsonl").read_text().splitlines()[0])
    bad = json.loads(json.dumps(good))
    change(bad)
    with pytest.raises(DataError, match=message) as caught:
        get_task("record").splits["dev"].reader(bad_line(tmp_path / "val.jsonl", good, bad))
    assert_names_file_and_line(caught, "val.jsonl")


def test_record_exact_match_and_f1_by_hand() -> None:
    task = get_task("record")
    answers = ENTITY_CHOICE.label_array([("Paris",), ("Eiffel Tower",), ("Paris", "Eiffel Tower")])
    predictions = np.array(["Paris", "the Eiffel Tower!", "Eiffel"], dtype=object)
    # EM 1, 1, 0; F1 1, 1 and "eiffel" vs "eiffel tower": P = 1, R = 1/2 -> 2/3.
    metrics = compute_metrics(task, predictions, answers)
    assert metrics == {"record_f1": pytest.approx((2 + 2 / 3) / 3), "record_em": pytest.approx(2 / 3)}


def test_entity_choice_features_head_loss_and_text_predictions(minilm_tokenizer, tmp_path: Path) -> None:
    task = get_task("record")
    dev = load_split(task, "dev", FIXTURES)
    features = ENTITY_CHOICE.featurize(dev, minilm_tokenizer, 64)
    assert list(features.starts) == [0, 3, 7, 11]
    filled = minilm_tokenizer(dev[1].passage, "The Eiffel Tower is in Paris.")["input_ids"]
    assert list(features.rows.input_ids(6)) == filled  # query 1, candidate 4 ("Eiffel Tower")
    batch = features.collate(np.array([2, 0]), pad_id=0)
    assert batch["labels"].tolist() == [[1, 0, 0, 1], [1, 0, 0, 0]]  # golds: Paris + Eiffel Tower; Berlin

    cache = TokenCache(tmp_path)
    cache.store("k", features)
    loaded = cache.load("k", task)
    assert isinstance(loaded, EntityChoiceFeatures) and loaded.candidates == features.candidates
    assert list(loaded.labels) == list(features.labels)
    test = ENTITY_CHOICE.featurize(load_split(task, "test", FIXTURES), minilm_tokenizer, 64)
    cache.store("t", test)
    assert list(cache.load("t", task).labels) == [None, None, None]
    assert list(ENTITY_CHOICE.label_array([("a",), ("b",)])) == [("a",), ("b",)]  # equal lengths stay tuples

    torch.manual_seed(0)
    head = EntityChoiceHead(hidden_size=4, num_outputs=1, dropout=0.0)
    pooled = torch.randn(len(batch["choice_example"]), 4)
    logits = head(EncoderOutput(tokens=pooled[:, None], pooled=pooled, mask=torch.ones(len(pooled), 1)), batch)
    scores = head.out(pooled).squeeze(-1)
    first, second = torch.log_softmax(scores[:4], 0), torch.log_softmax(scores[4:], 0)
    expected = -(torch.logsumexp(first[[0, 3]], 0) + second[0]) / 2  # -log P(gold) per query, averaged
    assert torch.allclose(head.loss(logits, batch), expected)
    predicted = head.predict(logits, batch)
    assert predicted == [features.candidates[2][int(scores[:4].argmax())],
                         features.candidates[0][int(scores[4:].argmax())]]
    assert head.loss(logits, {**batch, "labels": torch.zeros_like(batch["labels"])}).item() == 0.0


# -- AX-b, AX-g -------------------------------------------------------------------------------------

def test_axb_folds_the_glue_diagnostic_into_two_classes(data_dir: Path) -> None:
    full = load_split(get_task("ax-b"), "full", data_dir)
    # diagnostic-full.tsv: 460 entailment, 386 neutral + 258 contradiction
    assert len(full) == 1104 and sum(e.label == 0 for e in full) == 460
    assert [e.uid for e in load_split(get_task("ax-b"), "test", data_dir)][:3] == ["0", "1", "2"]


def test_axg_gender_parity_by_hand_and_pair_check(data_dir: Path, tmp_path: Path) -> None:
    task = get_task("ax-g")
    full = load_split(task, "full", data_dir)
    assert len(full) == 356 and full[0].text_b == full[1].text_b
    # pairs (0, 1) agree, (2, 3) differ, (4, 5) agree -> parity 2/3; only row 1 wrong -> accuracy 5/6
    metrics = compute_metrics(task, np.array([0, 0, 1, 0, 1, 1]), np.array([0, 1, 1, 0, 1, 1]))
    assert metrics == {"gender_parity": pytest.approx(2 / 3), "accuracy": pytest.approx(5 / 6)}
    rows = (data_dir / "superglue/ax-g/WinoGender.jsonl").read_text().splitlines()
    broken = tmp_path / "WinoGender.jsonl"
    broken.write_text("\n".join([rows[0], rows[2], rows[1], rows[3]]) + "\n")
    with pytest.raises(DataError, match="not a minimal pair"):
        task.splits["full"].reader(broken)


# -- the SuperGLUE score ------------------------------------------------------------------------------

def result(pipeline: str, task: str, metrics: dict[str, float], benchmark: str) -> TargetResult:
    score = float(np.mean(list(metrics.values())))
    return TargetResult(pipeline, task, metrics, score, [], 0, None, benchmark=benchmark)


def test_results_table_has_a_superglue_column_over_superglue_tasks_only() -> None:
    rows = [result("p", "cb", {"accuracy": 0.8, "f1_macro": 0.6}, SUPERGLUE),
            result("p", "multirc", {"multirc_f1a": 0.5, "multirc_em": 0.3}, SUPERGLUE),
            result("p", "rte", {"accuracy": 0.6}, "glue")]
    table = results_table(rows).splitlines()
    assert table[0] == "| pipeline | avg | SuperGLUE | cb | multirc | rte |"
    # avg (0.7 + 0.4 + 0.6) / 3; SuperGLUE (0.7 + 0.4) / 2: multi-metric tasks averaged inside first
    assert table[2].startswith("| p | 56.7 | 55.0 | 70.0 (80.0/60.0) | 40.0 (50.0/30.0) | 60.0 |")
    assert "SuperGLUE" not in results_table(rows[2:])


def test_study_tables_have_a_superglue_column() -> None:
    def row(task: str, seed: int, score: float) -> dict:
        return {"pipeline": "minilm", "task": task, "seed": seed, "score": score, "is_selected": True,
                "max_train_examples": None, "fields": {"seed": seed}}

    rows = [row("cb", 1, 0.7), row("copa", 1, 0.5), row("rte", 1, 0.9),
            row("cb", 2, 0.5), row("copa", 2, 0.7), row("rte", 2, 0.6)]
    [table] = glue_tables(rows)
    assert table.superglue_tasks == ["cb", "copa"] and table.score_columns[-1] == SUPERGLUE_AVG
    assert table.sample("minilm", SUPERGLUE_AVG).by_seed() == {1: pytest.approx(60.0), 2: pytest.approx(60.0)}
    assert table.best_of_each()[SUPERGLUE_AVG] == pytest.approx(60.0)
    assert glue_tables([row("rte", 1, 0.9)])[0].score_columns == ["Avg"]


# -- end to end --------------------------------------------------------------------------------------

def test_commonsenseqa_trains_from_the_cli(tiny_encoder: Path, data_dir: Path, tmp_path: Path) -> None:
    experiment = {
        "name": "csqa", "encoder": str(tiny_encoder), "seed": 1, "max_length": 32, "tensorboard": False,
        "stages": [{"name": "target", "max_steps": 2, "batch_size": 8,
                    "tasks": [{"name": "commonsenseqa", "max_train_examples": 16, "max_dev_examples": 40}]}],
    }
    config = tmp_path / "csqa.yaml"
    config.write_text(yaml.safe_dump(experiment))
    out = tmp_path / "run"
    assert main(["run", str(config), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"]) == 0
    [target] = json.loads((out / "results.json").read_text())["targets"]
    rows = (out / "pretrained" / "target" / "predictions" / "commonsenseqa-dev.tsv").read_text().splitlines()[1:]
    assert len(rows) == 40 and {r.split("\t")[1] for r in rows} <= set("ABCDE")
    accuracy = np.mean([r.split("\t")[1] == r.split("\t")[2] for r in rows])
    assert target["metrics"]["accuracy"] == pytest.approx(accuracy)
    assert not (out / "pretrained" / "target" / "submission").exists()


# The official SuperGLUE submission: one JSONL file per task, one line per test example
# (MultiRC: per paragraph), `idx` the example's id and `label` typed as the task's data files type
# their labels.
LABEL_VALUES = {
    "BoolQ.jsonl": {True, False}, "WiC.jsonl": {True, False}, "WSC.jsonl": {True, False},
    "CB.jsonl": {"entailment", "contradiction", "neutral"}, "COPA.jsonl": {0, 1},
    "RTE.jsonl": {"entailment", "not_entailment"}, "AX-b.jsonl": {"entailment", "not_entailment"},
    "AX-g.jsonl": {"entailment", "not_entailment"},
}
NESTED = {"MultiRC.jsonl", "ReCoRD.jsonl"}


def small_copy(source: Path, target: Path, rows: int) -> None:
    """The first `rows` data rows of a data file (TSV files keep their header)."""
    lines = source.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(lines[: rows + (source.suffix == ".tsv")]))


def superglue_data(data_dir: Path, folder: Path) -> list[str]:
    """A data directory holding a few rows of every split of every SuperGLUE task and diagnostic (the
    hand-made MultiRC and ReCoRD files; BoolQ and WiC, staged without train and test, get them made
    from their dev rows); returns the trainable tasks."""
    tasks = [t for t in all_tasks() if any(n.endswith(".jsonl") for n in t.submission_files.values())]
    for task in tasks:
        for split, source in task.splits.items():
            found = next((d / source.path for d in (FIXTURES, data_dir) if (d / source.path).is_file()), None)
            if found is None:
                dev = data_dir / task.splits["dev"].path
                found = tmp = folder / "unlabelled" / source.path
                small_copy(dev, tmp, 6)
                if split in task.submission_files:
                    tmp.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "label"})
                                           + "\n" for line in tmp.read_text().splitlines()))
            small_copy(found, folder / source.path, 6)
    return [t.name for t in tasks if "train" in t.splits]


def test_a_full_superglue_run_writes_files_in_the_official_format(
        tiny_encoder: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    targets = superglue_data(data_dir, data)
    experiment = {
        "name": "superglue", "encoder": str(tiny_encoder), "seed": 1, "max_length": 32, "tensorboard": False,
        "stages": [{"name": "target", "separate": True, "max_steps": 1, "batch_size": 4, "tasks": targets}],
    }
    config = tmp_path / "superglue.yaml"
    config.write_text(yaml.safe_dump(experiment))
    out = tmp_path / "run"
    assert main(["run", str(config), "--data-dir", str(data), "--output-dir", str(out), "--no-progress"]) == 0
    assert "| pipeline | avg | SuperGLUE |" in capsys.readouterr().out

    files = {p.name: p for p in out.rglob("submission/*.jsonl")}
    expected = {name: task for task in all_tasks() for split, name in task.submission_files.items()
                if name.endswith(".jsonl")}
    assert set(files) == set(expected) >= set(LABEL_VALUES) - {"WSC.jsonl"} | NESTED
    for name, path in files.items():
        task = expected[name]
        examples = load_split(task, "test", data)
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        if name == "MultiRC.jsonl":
            answers = [(line["idx"], q["idx"], a["idx"], a["label"])
                       for line in lines for q in line["passage"]["questions"] for a in q["answers"]]
            assert [f"{p}-{q}-{a}" for p, q, a, _ in answers] == [e.uid for e in examples]
            assert len(lines) == len({e.uid.split("-")[0] for e in examples})
            assert {label for *_, label in answers} <= {0, 1}
            assert all(set(line) == {"idx", "passage"} and set(line["passage"]) == {"questions"} for line in lines)
            continue
        assert all(set(line) == {"idx", "label"} for line in lines), name
        assert [line["idx"] for line in lines] == [int(e.uid) for e in examples], name
        if name == "ReCoRD.jsonl":
            assert all(line["label"] in e.candidates for line, e in zip(lines, examples))
        else:
            assert {line["label"] for line in lines} <= LABEL_VALUES[name], name
            assert all(type(line["label"]) in {type(v) for v in LABEL_VALUES[name]} for line in lines), name

    rte_checkpoint = next(out.rglob("superglue-rte/checkpoint.pt"))
    assert main(["evaluate", str(rte_checkpoint), "--tasks", "ax-g", "ax-b", "--data-dir", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "| ax-g |" in printed and "gender_parity=" in printed and "| ax-b |" in printed


# -- custom multiple-choice tasks --------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_multiple_choice_custom_task_example_trains_from_the_cli(tiny_encoder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(["run", str(EXAMPLES / "multiple_choice_custom_task.yaml"), "--output-dir", str(out), "--no-progress",
                 "--set", "stages.0.max_steps=2", "--set", "stages.0.batch_size=4", "--set", f"encoder={tiny_encoder}"])
    assert code == 0
    [target] = json.loads((out / "results.json").read_text())["targets"]
    assert target["task"] == "my-choices" and set(target["metrics"]) == {"accuracy"}
    rows = (out / "pretrained" / "target" / "predictions" / "my-choices-dev.tsv").read_text().splitlines()
    assert [r.split("\t")[2] for r in rows[1:]] == ["A", "B", "C", "A"]
    assert target["metrics"]["accuracy"] == pytest.approx(np.mean([r.split("\t")[1] == r.split("\t")[2]
                                                                   for r in rows[1:]]))


def custom_choice_task(tmp_path: Path, rows: list[dict], **columns: str) -> dict:
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"name": "mine", "kind": "multiple_choice", "labels": ["0", "1", "2"],
            "splits": {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "train.jsonl")},
            "columns": {"context": "q", "choices": "c", "label": "y", **columns}}


@pytest.mark.parametrize(("row", "message"), [
    ({"q": "x", "c": ["a"], "y": 0}, "list of 2 to 3 texts"),
    ({"q": "x", "c": ["a", "b"], "y": 2}, "names choice 3 of 2"),
    ({"q": "x", "c": ["a", "b"], "y": 5}, "label '5'"),
    ({"q": "x", "y": 0}, "lacks c"),
])
def test_custom_multiple_choice_rows_are_checked(tmp_path: Path, row: dict, message: str) -> None:
    good = {"q": "which?", "c": ["a", "b", "c"], "y": 1}
    reader = CustomTaskSpec.model_validate(custom_choice_task(tmp_path, [good, row])).reader("train")
    with pytest.raises(DataError, match=message) as caught:
        reader(tmp_path / "train.jsonl")
    assert_names_file_and_line(caught, "train.jsonl")


def test_superglue_diagnostics_prefer_the_superglue_rte_head_over_other_entailment_heads():
    from taskmix.evaluate import head_for

    heads = {"qnli": {"task": "qnli"}, "rte": {"task": "rte"}, "sg": {"task": "superglue-rte"}}
    assert head_for("ax-b", heads) == head_for("ax-g", heads) == "sg"
    assert head_for("ax-g", {"qnli": {"task": "qnli"}}) == "qnli"  # any two-class entailment head otherwise
