"""Multiple choice: the COPA reader, choice features, the head, learning, and a COPA run through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from taskmix.cli import main
from taskmix.config import StageConfig
from taskmix.errors import DataError
from taskmix.kinds.multiple_choice import MULTIPLE_CHOICE, ChoiceFeatures, MultipleChoiceHead
from taskmix.models.encoder import EncoderOutput, HFEncoder
from taskmix.models.model import MultiTaskModel
from taskmix.tasks import get_task, load_split
from taskmix.tasks.base import Task
from taskmix.training.features import TokenCache, TokenizedSplit
from taskmix.training.stage import StageTrainer
from taskmix.training.stage_task import LabelledStageTask


def test_copa_reader_reads_every_split(data_dir: Path) -> None:
    copa = get_task("copa")
    train, dev, test = (load_split(copa, s, data_dir) for s in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (400, 100, 500)
    first = dev[0]
    assert first.context == "The man turned on the faucet. What happened as a result?"
    assert first.choices == ("The toilet filled with water.", "Water flowed from the spout.")
    assert first.label == 1 and first.uid == "0"
    assert all(e.label is None for e in test) and {e.label for e in train} == {0, 1}
    assert sum("What was the cause of this?" in e.context for e in dev) > 0


@pytest.mark.parametrize(("row", "message"), [
    ({"premise": "p", "choice1": "a", "choice2": "b", "question": "why", "label": 0, "idx": 0}, "question 'why'"),
    ({"premise": "p", "choice1": "a", "question": "cause", "label": 0, "idx": 0}, "lacks choice2"),
    ({"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "label": 2, "idx": 0}, "label '2'"),
])
def test_copa_reader_names_file_and_line_of_a_bad_row(tmp_path: Path, row: dict, message: str) -> None:
    good = {"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "label": 0, "idx": 0}
    path = tmp_path / "val.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=message) as caught:
        get_task("copa").splits["dev"].reader(path)
    assert "val.jsonl" in str(caught.value) and ":2" in str(caught.value)


def test_choice_features_subset_concatenate_collate_and_cache(data_dir: Path, minilm_tokenizer, tmp_path: Path) -> None:
    tokenizer = minilm_tokenizer
    copa = get_task("copa")
    examples = load_split(copa, "dev", data_dir)
    features = MULTIPLE_CHOICE.featurize(examples, tokenizer, 64)
    assert len(features) == 100 and list(features.starts[:3]) == [0, 2, 4]
    pair = tokenizer(examples[3].context, examples[3].choices[1])["input_ids"]
    assert list(features.rows.input_ids(7)) == pair  # example 3, second choice
    assert features.lengths[3] == max(features.rows.lengths[6], features.rows.lengths[7])

    both = MULTIPLE_CHOICE.concatenate([features.subset(np.array([3])), features.subset(np.array([0, 1]))])
    assert both.uids == ["3", "0", "1"] and list(both.labels) == [examples[i].label for i in (3, 0, 1)]
    assert list(both.rows.input_ids(1)) == pair

    batch = both.collate(np.array([2, 0]), pad_id=0)
    assert batch["input_ids"].shape[0] == 4 and batch["labels"].tolist() == [examples[1].label, examples[3].label]
    assert batch["choice_example"].tolist() == [0, 0, 1, 1] and batch["choice_position"].tolist() == [0, 1, 0, 1]

    cache = TokenCache(tmp_path)
    cache.store("k", features)
    loaded = cache.load("k", copa)
    assert isinstance(loaded, ChoiceFeatures) and loaded.uids == features.uids
    assert torch.equal(loaded.collate(np.arange(5), 0)["input_ids"], features.collate(np.arange(5), 0)["input_ids"])


def test_head_scores_each_choice_and_gives_missing_choices_no_probability() -> None:
    torch.manual_seed(0)
    head = MultipleChoiceHead(hidden_size=4, num_outputs=3, dropout=0.0)
    pooled = torch.randn(5, 4)
    batch = {"choice_example": torch.tensor([0, 0, 0, 1, 1]), "choice_position": torch.tensor([0, 1, 2, 0, 1]),
             "labels": torch.tensor([2, 0])}
    logits = head(EncoderOutput(tokens=pooled[:, None], pooled=pooled, mask=torch.ones(5, 1)), batch)
    scores = head.out(pooled).squeeze(-1)
    assert logits.shape == (2, 3)
    assert torch.allclose(logits[0], scores[:3]) and torch.allclose(logits[1, :2], scores[3:])
    assert torch.softmax(logits, -1)[1, 2] == 0.0
    expected = -(torch.log_softmax(scores[:3], 0)[2] + torch.log_softmax(scores[3:], 0)[0]) / 2
    assert torch.allclose(head.loss(logits, batch), expected)
    assert head.predict(logits, batch).tolist() == [int(scores[:3].argmax()), int(scores[3:].argmax())]


def synthetic_choices(n: int, seed: int) -> ChoiceFeatures:
    """Three choices per example; the right one (at a random position) is the only one containing token 9."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for _ in range(n):
        answer = int(rng.integers(3))
        labels.append(answer)
        for k in range(3):
            choice = list(rng.integers(10, 60, size=3))
            if k == answer:
                choice[int(rng.integers(3))] = 9
            rows.append([2] + list(rng.integers(10, 60, size=4)) + [3] + choice + [3])
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rows])
    split = TokenizedSplit(ids=np.concatenate(rows).astype(np.int32), offsets=offsets,
                           segment_starts=np.full(len(rows), 6, dtype=np.int32),
                           labels=np.zeros(len(rows), dtype=np.int64), uids=[str(i) for i in range(len(rows))])
    return ChoiceFeatures(split, np.arange(0, 3 * n + 1, 3), np.array(labels), [str(i) for i in range(n)])


def test_the_engine_learns_a_multiple_choice_task(tiny_encoder: Path) -> None:
    """A stage trains the head and encoder until the right choice wins (chance is 1/3)."""
    task = Task(name="find-nine", kind=MULTIPLE_CHOICE, metrics=("accuracy",), splits={}, labels=("0", "1", "2"))
    st = LabelledStageTask(task=task, head="find-nine", train=synthetic_choices(192, 0), dev={"dev": synthetic_choices(96, 1)})
    torch.manual_seed(0)
    encoder = HFEncoder(str(tiny_encoder))
    model = MultiTaskModel(encoder, {"find-nine": MultipleChoiceHead(encoder.hidden_size, 3, dropout=0.0)})
    stage = StageConfig(name="mc", tasks=["find-nine"], max_epochs=6, batch_size=16, lr=3e-3, warmup=0.0,
                        dropout=0.0)
    outcome = StageTrainer(model, stage, [st], device=torch.device("cpu"), precision="fp32", seed=0,
                           pad_id=0, progress=False).train()
    assert outcome.best.metrics["find-nine"]["accuracy"] > 0.9
    baselines = st.baselines()
    assert baselines.best_constant < 0.5 and not st.is_degenerate(outcome.best.score, baselines)


def test_copa_run_through_the_cli_writes_predictions_and_a_superglue_submission(
        tiny_encoder: Path, data_dir: Path, tmp_path: Path) -> None:
    experiment = {
        "name": "copa", "encoder": str(tiny_encoder), "seed": 1, "max_length": 48, "tensorboard": False,
        "stages": [{"name": "target", "tasks": ["copa"], "max_steps": 3, "batch_size": 8, "restarts": 2,
                    "max_train_examples": 32}],
    }
    config = tmp_path / "copa.yaml"
    config.write_text(yaml.safe_dump(experiment))
    out = tmp_path / "run"
    assert main(["run", str(config), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"]) == 0

    results = json.loads((out / "results.json").read_text())
    [target] = results["targets"]
    assert target["task"] == "copa" and len(target["runs"]) == 2 and 0.0 <= target["score"] <= 1.0
    assert target["majority_score"] is not None

    stage_dir = out / "pretrained" / "target"
    rows = (stage_dir / "predictions" / "copa-dev.tsv").read_text().splitlines()
    assert rows[0] == "uid\tprediction\tlabel" and len(rows) == 101
    gold = [e.label for e in load_split(get_task("copa"), "dev", data_dir)]
    predicted = [int(r.split("\t")[1]) for r in rows[1:]]
    assert [int(r.split("\t")[2]) for r in rows[1:]] == gold
    assert np.mean(np.array(predicted) == np.array(gold)) == pytest.approx(target["metrics"]["accuracy"])

    submission = [json.loads(line) for line in (stage_dir / "submission" / "COPA.jsonl").read_text().splitlines()]
    assert [s["idx"] for s in submission] == list(range(500))
    assert {s["label"] for s in submission} <= {0, 1} and all(isinstance(s["label"], int) for s in submission)
