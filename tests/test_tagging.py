"""Token tagging: first-sub-token alignment, the head, chunk F1 and word accuracy, the CoNLL reader,
the token cache, and CoNLL-2000 and a custom tagging task trained through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from taskmix.cli import main
from taskmix.errors import ConfigError, DataError
from taskmix.kinds.tagging import MISSING, NO_TOKEN, TAGGING, TagExample, TagFeatures, TaggingHead
from taskmix.metrics import compute_metrics
from taskmix.models.encoder import EncoderOutput
from taskmix.models.heads import IGNORE
from taskmix.tasks import get_task, load_split
from taskmix.tasks.base import Task
from taskmix.tasks.conll import CHUNK_TAGS, POS_TAGS, ConllReader
from taskmix.training.features import TokenCache

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TAGS = ("B-NP", "B-PP", "B-VP", "I-NP", "O")
NP, PP, VP, I_NP, O = range(5)


def small_task(metrics: tuple[str, ...] = ("chunk_f1", "token_accuracy")) -> Task:
    return Task(name="chunks", kind=TAGGING, metrics=metrics, splits={}, labels=TAGS)


def test_labels_sit_on_the_first_sub_token_of_each_word(minilm_tokenizer) -> None:
    # MiniLM reads "reaffirmed" as re ##af ##firmed: positions 2-4 after [CLS] rockwell.
    example = TagExample(("Rockwell", "reaffirmed", "its", "outlook", "."), (NP, VP, NP, I_NP, O), "7")
    features = TAGGING.featurize([example], minilm_tokenizer, 64)
    tokens = minilm_tokenizer.convert_ids_to_tokens(features.rows.input_ids(0).tolist())
    assert tokens == ["[CLS]", "rockwell", "re", "##af", "##firmed", "its", "outlook", ".", "[SEP]"]
    assert features.positions[0].tolist() == [1, 2, 5, 6, 7]
    batch = features.collate(np.array([0]), pad_id=0)
    assert batch["labels"][0, :9].tolist() == [IGNORE, NP, VP, IGNORE, IGNORE, NP, I_NP, O, IGNORE]
    assert batch["first_token"][0].nonzero().flatten().tolist() == [1, 2, 5, 6, 7]
    assert batch["word_counts"].tolist() == [5] and features.uids == ["7"]


def test_truncated_words_have_no_token_and_are_predicted_missing(minilm_tokenizer) -> None:
    example = TagExample(("Rockwell", "reaffirmed", "its", "outlook", "."), (NP, VP, NP, I_NP, O))
    features = TAGGING.featurize([example], minilm_tokenizer, 5)  # [CLS] rockwell re ##af [SEP]
    assert features.positions[0].tolist() == [1, 2, NO_TOKEN, NO_TOKEN, NO_TOKEN]
    batch = features.collate(np.array([0]), pad_id=0)
    head = TaggingHead(hidden_size=4, num_outputs=len(TAGS), dropout=0.0)
    tokens = torch.randn(1, batch["input_ids"].shape[1], 4)
    logits = head(EncoderOutput(tokens=tokens, pooled=tokens[:, 0], mask=batch["attention_mask"]), batch)
    [prediction] = head.predict(logits, batch)
    assert prediction[2:].tolist() == [MISSING] * 3 and len(prediction) == 5
    # the three unseen words count as errors, whatever the first two get
    metrics = compute_metrics(small_task(("token_accuracy",)), [prediction], [np.array(example.tags)])
    assert metrics["token_accuracy"] == pytest.approx(np.mean(prediction[:2] == np.array([NP, VP])) * 2 / 5)


def test_head_loss_and_predictions_over_first_sub_tokens() -> None:
    torch.manual_seed(0)
    head = TaggingHead(hidden_size=4, num_outputs=3, dropout=0.0)
    tokens = torch.randn(2, 6, 4)
    first = torch.tensor([[0, 1, 0, 1, 1, 0], [0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    labels = torch.full((2, 6), IGNORE)
    labels[0, 1], labels[0, 3], labels[1, 1] = 2, 0, 1  # (0, 4) and (1, 2): words without a gold tag
    batch = {"first_token": first, "labels": labels, "word_counts": torch.tensor([4, 2]),
             "word_positions": torch.tensor([[1, 3, NO_TOKEN, 4], [1, 2, NO_TOKEN, NO_TOKEN]])}
    logits = head(EncoderOutput(tokens=tokens, pooled=tokens[:, 0], mask=torch.ones(2, 6)), batch)
    scores = head.out(tokens)
    assert logits.shape == (5, 3)
    assert torch.allclose(logits, torch.stack([scores[0, 1], scores[0, 3], scores[0, 4], scores[1, 1], scores[1, 2]]))
    expected = -(torch.log_softmax(scores[0, 1], 0)[2] + torch.log_softmax(scores[0, 3], 0)[0]
                 + torch.log_softmax(scores[1, 1], 0)[1]) / 3
    assert torch.allclose(head.loss(logits, batch), expected)
    best = scores.argmax(-1).tolist()
    first_row, second_row = head.predict(logits, batch)
    assert first_row.tolist() == [best[0][1], best[0][3], MISSING, best[0][4]]
    assert second_row.tolist() == [best[1][1], best[1][2]]
    assert head.loss(logits, {**batch, "labels": torch.full((2, 6), IGNORE)}).item() == 0.0


def test_chunk_f1_and_token_accuracy_on_a_crafted_sequence() -> None:
    gold = [np.array([NP, I_NP, VP, O, PP, NP]), np.array([NP, I_NP, O])]
    # Sentence 1: NP(0) NP(1) VP(2) PP(4) NP(5), the last read as conlleval does (I-NP after
    # B-PP opens a chunk); right: VP, PP, NP(5).  Sentence 2: NP(0) only (two words unseen), wrong.
    # Chunks: 3 right, 6 predicted, 5 gold -> P = 1/2, R = 3/5, F1 = 6/11.
    pred = [np.array([NP, NP, VP, O, PP, I_NP]), np.array([NP, MISSING, MISSING])]
    metrics = compute_metrics(small_task(), pred, gold)
    assert metrics["chunk_f1"] == pytest.approx(6 / 11)
    assert metrics["token_accuracy"] == pytest.approx(5 / 9)  # 4 of 6 and 1 of 3 words
    perfect = compute_metrics(small_task(), gold, gold)
    assert perfect == {"chunk_f1": 1.0, "token_accuracy": 1.0}


def test_constant_tag_baselines_and_dev_prediction_text() -> None:
    task = small_task()
    gold = [np.array([NP, I_NP, VP, O, PP, NP]), np.array([NP, I_NP, O])]
    outside = compute_metrics(task, np.full(2, O), gold)  # "O" on every word: no chunk at all
    assert outside == {"chunk_f1": 0.0, "token_accuracy": pytest.approx(2 / 9)}
    assert TAGGING.constant_predictions(task) == list(range(5))
    assert TAGGING.majority_prediction(gold) == NP  # 4 of 9 training words
    assert TAGGING.format_prediction(task, np.array([NP, MISSING, O])) == "B-NP _ O"
    with pytest.raises(ValueError, match="sentence 1 has 3 words but 2"):
        compute_metrics(task, [gold[0], gold[1][:2]], gold)


def conll_file(tmp_path: Path, text: str, name: str = "part.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def test_conll_reader_columns_sentences_and_document_markers(tmp_path: Path) -> None:
    path = conll_file(tmp_path, "-DOCSTART- -X- O\n\nHe PRP B-NP\nran VBD B-VP\r\n\n\n\nOK UH O\n")
    reader = ConllReader(0, 2, TAGS)
    first, second = reader(path)
    assert first == TagExample(("He", "ran"), (NP, VP), "0") and second == TagExample(("OK",), (O,), "1")
    assert ConllReader(0, None)(path)[0].tags is None


@pytest.mark.parametrize(("text", "message", "line"), [
    ("He PRP B-NP\nran VBD\n", "expected at least 3 whitespace-separated columns, found 2", 2),
    ("He PRP B-NP\n\nran VBD B-ADJP\n", "tag 'B-ADJP' is not one of the task's 5 tags", 3),
])
def test_conll_reader_names_file_and_line_of_a_bad_row(tmp_path: Path, text: str, message: str, line: int) -> None:
    path = conll_file(tmp_path, text)
    with pytest.raises(DataError, match=message) as caught:
        ConllReader(0, 2, TAGS)(path)
    assert f"part.txt:{line}:" in str(caught.value)


def test_conll2000_tag_sets_and_fixed_dev_split(data_dir: Path) -> None:
    tags = {"pos": set(), "chunk": set()}
    for name in ("train.txt", "test.txt"):
        for line in (data_dir / "conll2000" / name).read_text().splitlines():
            if line:
                _, pos, chunk = line.split(" ")
                tags["pos"].add(pos)
                tags["chunk"].add(chunk)
    assert CHUNK_TAGS == tuple(sorted(tags["chunk"])) and len(CHUNK_TAGS) == 23
    assert POS_TAGS == tuple(sorted(tags["pos"])) and len(POS_TAGS) == 44
    chunk, pos = get_task("conll2000-chunk"), get_task("conll2000-pos")
    train, dev = load_split(chunk, "train", data_dir), load_split(chunk, "dev", data_dir)
    assert (len(train), len(dev)) == (7936, 1000)
    assert sorted(int(e.uid) for e in train + dev) == list(range(8936))
    assert [e.uid for e in load_split(pos, "dev", data_dir)] == [e.uid for e in dev]  # same sentences for both
    assert sum(len(e.words) for e in train + dev) == 211727
    first = load_split(pos, "test", data_dir)[0]
    assert first.words[:3] == ("Rockwell", "International", "Corp.") and first.uid == "0"
    assert [POS_TAGS[t] for t in first.tags[:3]] == ["NNP"] * 3
    assert chunk.num_classes == 23 and pos.num_classes == 44


def test_tasks_command_lists_the_conll2000_tasks(data_dir: Path, monkeypatch, capsys) -> None:
    import taskmix.tasks

    monkeypatch.setattr(taskmix.tasks, "all_tasks", lambda: [get_task("conll2000-chunk"), get_task("conll2000-pos")])
    assert main(["tasks", "--data-dir", str(data_dir)]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| conll")]
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [
        ("| conll2000-chunk", "tagging", "chunk_f1", "train (7936); dev (1000); test (2012) |"),
        ("| conll2000-pos", "tagging", "token_accuracy", "train (7936); dev (1000); test (2012) |"),
    ]


def test_tag_features_round_trip_through_the_token_cache(data_dir: Path, minilm_tokenizer, tmp_path: Path) -> None:
    task = get_task("conll2000-chunk")
    examples = load_split(task, "test", data_dir)[:40]
    features = TAGGING.featurize(examples, minilm_tokenizer, 32)  # short enough to cut some sentences
    assert any((p == NO_TOKEN).any() for p in features.positions)
    cache = TokenCache(tmp_path)
    cache.store("k", features)
    loaded = cache.load("k", task)
    assert isinstance(loaded, TagFeatures) and loaded.uids == features.uids
    for field in ("positions", "labels"):
        assert all(np.array_equal(a, b) for a, b in zip(getattr(loaded, field), getattr(features, field)))
    indices = np.array([5, 0, 17])
    for key, value in features.collate(indices, 0).items():
        assert torch.equal(loaded.collate(indices, 0)[key], value), key
    both = TAGGING.concatenate([loaded.subset(np.array([3])), features.subset(np.array([0, 1]))])
    assert both.uids == [examples[i].uid for i in (3, 0, 1)]
    assert [list(t) for t in both.labels] == [list(examples[i].tags) for i in (3, 0, 1)]
    assert torch.equal(both.collate(np.array([0]), 0)["input_ids"], features.collate(np.array([3]), 0)["input_ids"])


def run_cli(tmp_path: Path, experiment: dict, data_dir: Path) -> Path:
    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump(experiment))
    out = tmp_path / "run"
    assert main(["run", str(config), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"]) == 0
    return out


def test_conll2000_chunking_trains_through_the_cli(tiny_encoder: Path, data_dir: Path, tmp_path: Path) -> None:
    experiment = {
        "name": "chunk", "encoder": str(tiny_encoder), "seed": 1, "max_length": 64, "tensorboard": False,
        "stages": [{"name": "target", "tasks": ["conll2000-chunk"], "max_steps": 3, "batch_size": 8, "lr": 0.01,
                    "max_train_examples": 32, "max_dev_examples": 40}],
    }
    out = run_cli(tmp_path, experiment, data_dir)
    [target] = json.loads((out / "results.json").read_text())["targets"]
    assert target["task"] == "conll2000-chunk" and set(target["metrics"]) == {"chunk_f1"}
    assert target["majority_score"] is not None  # the most frequent training tag on every word

    rows = (out / "pretrained" / "target" / "predictions" / "conll2000-chunk-dev.tsv").read_text().splitlines()
    assert rows[0] == "uid\tprediction\tlabel" and len(rows) == 41
    dev = {e.uid: e for e in load_split(get_task("conll2000-chunk"), "dev", data_dir)}
    pred, gold = [], []
    for row in rows[1:]:
        uid, predicted, labelled = row.split("\t")
        assert labelled.split(" ") == [CHUNK_TAGS[t] for t in dev[uid].tags]
        pred.append([tag.replace("_", "O") for tag in predicted.split(" ")])  # MISSING: no chunk
        gold.append(labelled.split(" "))
        assert len(pred[-1]) == len(gold[-1])
    from seqeval.metrics import f1_score

    assert f1_score(gold, pred) == pytest.approx(target["metrics"]["chunk_f1"])


def test_custom_tagging_task_example_trains_through_the_cli(tiny_encoder: Path, data_dir: Path,
                                                            tmp_path: Path) -> None:
    experiment = yaml.safe_load((EXAMPLES / "tagging_custom_task.yaml").read_text())
    for task in experiment["custom_tasks"]:
        task["splits"] = {k: str(EXAMPLES / v) for k, v in task["splits"].items()}
    experiment.update(encoder=str(tiny_encoder), tensorboard=False, max_length=32)
    experiment["stages"][0].update(max_steps=2, batch_size=4)
    out = run_cli(tmp_path, experiment, data_dir)
    [target] = json.loads((out / "results.json").read_text())["targets"]
    assert target["task"] == "my-chunks" and set(target["metrics"]) == {"chunk_f1", "token_accuracy"}
    submission = (out / "pretrained" / "target" / "submission" / "my-chunks.tsv").read_text().splitlines()
    words = [len(s.split("\n")) for s in (EXAMPLES / "data" / "my_chunks" / "test.txt").read_text().strip().split("\n\n")]
    assert submission[0] == "index\tprediction" and len(submission) == len(words) + 1
    assert [len(row.split("\t")[1].split(" ")) for row in submission[1:]] == words


def test_custom_tagging_task_errors_name_the_problem(tmp_path: Path) -> None:
    from taskmix.config import parse_experiment

    base = {"name": "x", "kind": "tagging", "splits": {"train": "a.txt", "dev": "b.txt"},
            "columns": {"word": 0, "tag": 1}, "labels": ["B-NP", "O"]}
    cases = [({"columns": {"word": 0}}, "tag"), ({"header": True}, "no header line"),
             ({"metrics": ["accuracy"]}, "unknown metric"), ({"format": "tsv"}, "format")]
    for change, message in cases:
        with pytest.raises(ConfigError, match=message):
            parse_experiment({"name": "e", "custom_tasks": [{**base, **change}],
                              "stages": [{"name": "s", "tasks": ["x"]}]})
