"""Extractive QA: windows and offsets, span search, SQuAD EM/F1, the SQuAD JSON reader, the token
cache, learning, and an XQuAD-en run through the CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from taskmix.cli import main
from taskmix.config import StageConfig, parse_experiment
from taskmix.errors import ConfigError, DataError
from taskmix.kinds.extractive_qa import (EXTRACTIVE_QA, Answer, AnswerSpan, QAExample, SpanFeatures, SpanHead,
                                         best_spans)
from taskmix.text_answers import normalize_answer
from taskmix.metrics import compute_metrics
from taskmix.models.encoder import HFEncoder
from taskmix.models.heads import build_head
from taskmix.models.model import MultiTaskModel
from taskmix.tasks import get_task, load_split
from taskmix.tasks.base import Task
from taskmix.tasks.squad import SquadReader
from taskmix.training.features import TokenCache
from taskmix.training.stage import StageTrainer
from taskmix.training.stage_task import LabelledStageTask

QA_TASK = Task(name="qa", kind=EXTRACTIVE_QA, metrics=("squad_em", "squad_f1"), splits={})

# With max_length 32 and the 5-token question a window holds 24 context tokens and the next one
# starts 15 tokens later (overlap 29 // 3 = 9): windows cover context tokens 0-23, 15-38, 30-53, 45-.
# The answer (6 tokens: the red e ##iff ##el tower) is context tokens 26-31, so it lies wholly in
# window 1 only; window 2 holds just its last two tokens.  "café zoë" makes characters differ from
# UTF-8 bytes.
FILLER = "café zoë " + "and " * 24
ANSWER = "the red Eiffel tower"
LONG_CONTEXT = FILLER + ANSWER + " and" * 30
QUESTION = "Where is the tower?"


def long_example() -> QAExample:
    return QAExample(QUESTION, LONG_CONTEXT, (Answer(ANSWER, LONG_CONTEXT.index(ANSWER)),), uid="q1")


def test_a_long_context_is_cut_into_windows_and_offsets_give_back_the_answer(minilm_tokenizer) -> None:
    features = EXTRACTIVE_QA.featurize([long_example()], minilm_tokenizer, 32)
    windows = features.windows
    assert len(features) == 1 and features.starts.tolist() == [0, len(windows)] and len(windows) >= 4
    assert windows.lengths.max() <= 32
    targets = windows.labels.tolist()
    assert targets[0] == [0, 0] and targets[2] == [0, 0] and targets[3] == [0, 0]
    first, last = targets[1]
    spans = features.char_spans.row(1)
    assert first > windows.segment_starts[1] and LONG_CONTEXT[spans[first][0]:spans[last][1]] == ANSWER
    question_tokens = len(minilm_tokenizer(QUESTION, add_special_tokens=False)["input_ids"])
    assert (spans[: question_tokens + 2] == -1).all()  # [CLS], the question and [SEP] are outside the context

    # crafted logits: the answer's tokens in window 1, a higher decoy on a question token of window 0
    batch = features.collate(np.array([0]), pad_id=0)
    logits = torch.zeros(*batch["input_ids"].shape, 2)
    logits[1, first, 0] = logits[1, last, 1] = 5.0
    logits[0, 1, 0] = logits[0, 1, 1] = 50.0
    [answer] = SpanHead(16, 2).predict(logits, batch)
    start = LONG_CONTEXT.index(ANSWER)
    assert answer == AnswerSpan(start, start + len(ANSWER), ANSWER)


def test_a_window_too_short_for_question_and_context_is_a_config_error(minilm_tokenizer) -> None:
    with pytest.raises(ConfigError, match="max_length 18 is too short for extractive QA"):
        EXTRACTIVE_QA.featurize([long_example()], minilm_tokenizer, 18)
    long_question = QAExample("why " * 40 + "?", LONG_CONTEXT, long_example().answers)
    features = EXTRACTIVE_QA.featurize([long_question], minilm_tokenizer, 32)
    assert features.windows.segment_starts[0] == 1 + 14 + 1  # [CLS], half the 29-token budget, [SEP]


def test_span_search_respects_order_and_maximum_length() -> None:
    start = torch.tensor([[0.0, 1, 5, 0, 0, 0], [9, 9, 9, 9, 9, 9]])
    end = torch.tensor([[0.0, 7, 0, 0, 2, 4], [9, 9, 9, 9, 9, 9]])
    allowed = torch.tensor([[False, True, True, True, True, True], [False] * 6])
    # (2, 1) would score 12 but ends before it starts; (2, 5) scores 9 but is 4 tokens long
    score, first, last = best_spans(start, end, allowed, max_answer_length=3)
    assert score[0] == 8 and (first[0], last[0]) == (1, 1) and score[1] == float("-inf")
    score, first, last = best_spans(start, end, allowed, max_answer_length=4)
    assert score[0] == 9 and (first[0], last[0]) == (2, 5)


def test_prediction_takes_the_best_window_of_each_example() -> None:
    spans = torch.tensor([[[0, 3], [4, 7]], [[2, 5], [6, 9]], [[0, 2], [-1, -1]]])  # (windows, width, 2)
    batch = {"char_spans": spans, "window_example": torch.tensor([0, 0, 1]),
             "context_codes": torch.tensor([[ord(c) for c in "abc defg xyz"], [ord(c) for c in "hi" + " " * 10]])}
    logits = torch.tensor([[[1.0, 0], [0, 2]], [[3, 1], [0, 0.5]], [[0, 0], [8, 8]]])
    head = build_head("extractive_qa", 16, 2, settings={"max_answer_length": 2})
    # example 0: window 0's best is 1 + 2 = 3, window 1's is 3 + 1 = 4 (its first token alone)
    assert head.predict(logits, batch) == [AnswerSpan(2, 5, "c d"), AnswerSpan(0, 2, "hi")]


def test_longest_answer_is_a_checked_head_setting() -> None:
    assert SpanHead(16, 2).max_answer_length == 30
    with pytest.raises(ConfigError, match="max_answer_length must be a positive integer, got 0"):
        build_head("extractive_qa", 16, 2, settings={"max_answer_length": 0})
    with pytest.raises(ConfigError, match="no setting 'max_answer'; their settings: max_answer_length \\(default 30\\)"):
        build_head("extractive_qa", 16, 2, settings={"max_answer": 5})


def test_normalisation_follows_squad() -> None:
    assert normalize_answer("The  Eiffel-Tower, an icon!") == "eiffeltower icon"
    assert normalize_answer("Theatre of A Nation") == "theatre of nation"


def test_exact_match_and_f1_against_hand_computed_values() -> None:
    cases = [  # prediction, golds, EM, F1
        ("The Eiffel Tower!", ("eiffel tower",), 1, 1.0),
        ("in Paris, France", ("Paris",), 0, 0.5),  # 1 shared token: precision 1/3, recall 1
        ("an apple a day", ("apples", "Apple  day."), 1, 1.0),  # the second gold matches
        ("red big ball", ("big blue ball", "a ball"), 0, 2 / 3),  # max(2/3, F1 of 1/3 and 1 = 0.5)
        ("the cat the cat", ("cat",), 0, 2 / 3),  # bags: {cat: 2} vs {cat: 1}
        ("", ("Paris",), 0, 0.0),
    ]
    predictions = np.empty(len(cases), dtype=object)
    labels = np.empty(len(cases), dtype=object)
    for i, (text, golds, _, _) in enumerate(cases):
        predictions[i], labels[i] = AnswerSpan(0, len(text), text), golds
    metrics = compute_metrics(QA_TASK, predictions, labels)
    assert metrics["squad_em"] == pytest.approx(2 / 6)
    assert metrics["squad_f1"] == pytest.approx((1 + 0.5 + 1 + 2 / 3 + 2 / 3 + 0) / 6)
    with pytest.raises(ValueError, match="no gold answer"):
        compute_metrics(QA_TASK, predictions[:1], np.array([()] + [None], dtype=object)[:1])


def squad_file(path: Path, questions: list[dict], context: str = "Paris is the capital of France.") -> Path:
    path.write_text(json.dumps({"version": "1.1", "data": [
        {"title": "A", "paragraphs": [{"context": context, "qas": questions}]},
        {"title": "B", "paragraphs": [{"context": "Rome is in Italy.", "qas": [
            {"id": "r1", "question": "Where is Rome?", "answers": [{"text": "Italy", "answer_start": 11}]}]}]},
    ]}))
    return path


def test_squad_reader_reads_questions_and_selects_articles(tmp_path: Path) -> None:
    path = squad_file(tmp_path / "qa.json", [
        {"id": "p1", "question": "What is Paris?", "answers": [
            {"text": "the capital of France", "answer_start": 9}, {"text": "capital", "answer_start": 13}]}])
    first, second = SquadReader()(path)
    assert first.uid == "p1" and first.question == "What is Paris?"
    assert first.answers == (Answer("the capital of France", 9), Answer("capital", 13))
    assert second.context == "Rome is in Italy." and second.answers[0].end == 16
    assert [e.uid for e in SquadReader(first_article=1)(path)] == ["r1"]
    assert [e.uid for e in SquadReader(end_article=1)(path)] == ["p1"]
    assert SquadReader(labelled=False)(path)[0].answers == ()


@pytest.mark.parametrize(("content", "message"), [
    ('{"data": [{"paragraphs": [}', "bad JSON"),
    ('{"articles": []}', "the top level has no 'data'"),
])
def test_squad_reader_rejects_malformed_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as caught:
        SquadReader()(path)
    assert "broken.json" in str(caught.value)


@pytest.mark.parametrize(("question", "message"), [
    ({"id": "q7", "question": "?", "answers": [{"text": "Paris", "answer_start": 3}]},
     "question 'q7': answer 'Paris' is not at answer_start 3 of its context \\(found 'is is' there\\)"),
    ({"id": "q8", "question": "?", "answers": []}, "question 'q8' has no answers"),
    ({"id": "q9", "question": "?", "answers": [{"text": "Paris"}]}, "question 'q9' has no 'answer_start'"),
    ({"id": "r1", "question": "?", "answers": [{"text": "Paris", "answer_start": 0}]}, "'r1' appears twice"),
])
def test_squad_reader_names_file_and_question_of_a_bad_answer(tmp_path: Path, question: dict, message: str) -> None:
    path = squad_file(tmp_path / "dev.json", [question])
    with pytest.raises(DataError, match=message) as caught:
        SquadReader()(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_xquad_is_split_by_article(data_dir: Path) -> None:
    task = get_task("xquad-en")
    train, dev = load_split(task, "train", data_dir), load_split(task, "dev", data_dir)
    assert (len(train), len(dev)) == (925, 265) and "test" not in task.splits
    assert not {e.context for e in train} & {e.context for e in dev}
    # the last question of the 36th article (University_of_Chicago), the first of the 37th (Yuan_dynasty)
    assert (train[-1].uid, dev[0].uid) == ("572870b2ff5b5019007da225", "57286dfa2ca10214002da332")


def test_features_subset_concatenate_and_token_cache_round_trip(minilm_tokenizer, tmp_path: Path) -> None:
    examples = [long_example(), QAExample("What is Paris?", "Paris is the capital of France.",
                                          (Answer("capital", 13), Answer("the capital", 9)), uid="p1")]
    features = EXTRACTIVE_QA.featurize(examples, minilm_tokenizer, 32)
    assert features.labels.tolist() == [(ANSWER,), ("capital", "the capital")]
    cache = TokenCache(tmp_path)
    cache.store("k", features)
    loaded = cache.load("k", QA_TASK)
    assert isinstance(loaded, SpanFeatures) and loaded.uids == ["q1", "p1"]
    assert loaded.labels.tolist() == features.labels.tolist()
    both = EXTRACTIVE_QA.concatenate([loaded.subset(np.array([1])), loaded.subset(np.array([0]))])
    assert both.uids == ["p1", "q1"] and both.labels.tolist() == [("capital", "the capital"), (ANSWER,)]
    original, again = features.collate(np.array([1, 0]), 0), both.collate(np.array([0, 1]), 0)
    assert original.keys() == again.keys()
    for key in original:
        assert torch.equal(original[key], again[key]), key
    assert again["window_example"].tolist() == [0] + [1] * (len(again["labels"]) - 1)


def synthetic_questions(n: int, seed: int) -> list[QAExample]:
    """Contexts of random words where the answer is always the animal, a word found nowhere else."""
    rng = random.Random(seed)
    words = ("red", "green", "house", "river", "stone", "paper", "cloud", "window", "bread", "music")
    examples = []
    for i in range(n):
        before = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        after = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        animal = rng.choice(("zebra", "giraffe"))
        context = f"{before} {animal} {after}".strip()
        examples.append(QAExample("Which animal?", context, (Answer(animal, context.index(animal)),), uid=str(i)))
    return examples


def test_the_engine_learns_to_find_the_answer(tiny_encoder: Path, minilm_tokenizer) -> None:
    train = EXTRACTIVE_QA.featurize(synthetic_questions(96, 0), minilm_tokenizer, 24)
    dev = EXTRACTIVE_QA.featurize(synthetic_questions(48, 1), minilm_tokenizer, 24)
    assert len(dev.windows) > len(dev)  # some answers sit in a later window
    st = LabelledStageTask(task=QA_TASK, head="qa", train=train, dev={"dev": dev})
    torch.manual_seed(0)
    encoder = HFEncoder(str(tiny_encoder))
    model = MultiTaskModel(encoder, {"qa": SpanHead(encoder.hidden_size, 2, dropout=0.0)})
    stage = StageConfig(name="qa", tasks=["qa"], max_epochs=5, batch_size=16, lr=1e-2, warmup=0.0, dropout=0.0)
    outcome = StageTrainer(model, stage, [st], device=torch.device("cpu"), precision="fp32", seed=0,
                           pad_id=0, progress=False).train()
    assert outcome.best.metrics["qa"]["squad_em"] > 0.9
    assert not st.is_degenerate(outcome.best.score, st.baselines())


def test_xquad_run_through_the_cli_writes_answer_texts(tiny_encoder: Path, data_dir: Path, tmp_path: Path) -> None:
    experiment = {
        "name": "qa", "encoder": str(tiny_encoder), "max_length": 64, "tensorboard": False,
        "stages": [{"name": "target", "max_steps": 3, "batch_size": 4,
                    "tasks": [{"name": "xquad-en", "max_train_examples": 16, "max_dev_examples": 24}]}],
    }
    config = tmp_path / "qa.yaml"
    config.write_text(yaml.safe_dump(experiment))
    out = tmp_path / "run"
    assert main(["run", str(config), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"]) == 0
    [target] = json.loads((out / "results.json").read_text())["targets"]
    assert target["task"] == "xquad-en" and set(target["metrics"]) == {"squad_em", "squad_f1"}

    rows = (out / "pretrained" / "target" / "predictions" / "xquad-en-dev.tsv").read_text().splitlines()
    assert rows[0] == "uid\tprediction\tlabel" and len(rows) == 25
    dev = {e.uid: e for e in load_split(get_task("xquad-en"), "dev", data_dir)}
    predictions = np.empty(24, dtype=object)
    labels = np.empty(24, dtype=object)
    for i, row in enumerate(rows[1:]):
        uid, predicted, gold = row.split("\t")
        assert predicted in dev[uid].context and gold == dev[uid].answers[0].text
        predictions[i], labels[i] = AnswerSpan(0, 0, predicted), (gold,)
    assert compute_metrics(get_task("xquad-en"), predictions, labels) == pytest.approx(target["metrics"])


def test_custom_extractive_qa_task_from_yaml_trains_and_submits(tmp_path: Path, tiny_encoder: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "extractive_qa_custom_task.yaml"
    out = tmp_path / "custom"
    assert main(["run", str(example), "--output-dir", str(out), "--no-progress", "--set", "stages.0.max_steps=2",
                 "--set", f"encoder={tiny_encoder}"]) == 0
    [target] = json.loads((out / "results.json").read_text())["targets"]
    assert target["task"] == "my-qa" and set(target["metrics"]) == {"squad_em", "squad_f1"}
    stage_dir = out / "pretrained" / "target"
    dev_rows = (stage_dir / "predictions" / "my-qa-dev.tsv").read_text().splitlines()
    assert [r.split("\t")[2] for r in dev_rows[1:]] == ["five", "1602", "A wider steel bridge", "walkers"]
    context = "The orchard grows forty varieties of apple and harvests them between August and October."
    submission = [r.split("\t") for r in (stage_dir / "submission" / "my-qa.tsv").read_text().splitlines()]
    assert submission[0] == ["index", "prediction"] and [r[0] for r in submission[1:]] == ["x1", "x2"]
    assert all(r[1] in context for r in submission[1:])


@pytest.mark.parametrize(("change", "message"), [
    ({"columns": {"question": "q"}}, "unknown key 'custom_tasks.0.question'"),
    ({"splits": {"train": "a.tsv", "dev": "b.json"}}, "cannot tell the format of 'a.tsv' .* one of squad"),
])
def test_custom_extractive_qa_task_reads_squad_json_without_columns(change: dict, message: str) -> None:
    task = {"name": "q", "kind": "extractive_qa", "splits": {"train": "a.json", "dev": "b.json"}, "columns": {},
            **change}
    with pytest.raises(ConfigError, match=message):
        parse_experiment({"custom_tasks": [task], "stages": [{"name": "s", "tasks": ["q"]}]})
