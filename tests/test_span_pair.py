"""Span-pair classification: char spans to tokens, the WSC and WiC readers, the head, learning, and a WSC run."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch
import yaml

from taskmix.cli import main
from taskmix.config import StageConfig
from taskmix.errors import DataError
from taskmix.kinds.span_pair import SPAN_PAIR, CharSpan, SpanPairExample, SpanPairFeatures, SpanPairHead
from taskmix.models.encoder import EncoderOutput, HFEncoder
from taskmix.models.model import MultiTaskModel
from taskmix.tasks import get_task, load_split
from taskmix.tasks.base import Task
from taskmix.tasks.custom import CustomTaskSpec, build_custom_task
from taskmix.tasks.span_pairs import locate_words
from taskmix.training.features import TokenCache
from taskmix.training.stage import StageTrainer
from taskmix.training.stage_task import LabelledStageTask


def chars(text: str, phrase: str, segment: int = 0, occurrence: int = 0) -> CharSpan:
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(phrase, start + 1)
    return CharSpan(start, start + len(phrase), segment)


def span_tokens(features: SpanPairFeatures, row: int, which: int, tokenizer) -> str:
    start, end = features.spans[row, 2 * which: 2 * which + 2]
    return tokenizer.decode(features.input_ids(row)[start:end])


def test_char_spans_map_to_the_word_pieces_of_their_words(minilm_tokenizer) -> None:
    text = "the unbelievably hyperactive dachshunds barked at the postman, who ignored them."
    one = SpanPairExample(text, None, chars(text, "hyperactive dachshunds"), chars(text, "them"), 1, "a")
    first, second = "the postman came", "a postman left"
    pair = SpanPairExample(first, second, chars(first, "postman"), chars(second, "postman", 1), 0, "b")
    single = SPAN_PAIR.featurize([one], minilm_tokenizer, 64)
    pairs = SPAN_PAIR.featurize([pair], minilm_tokenizer, 64)
    # [CLS] the un ##bel ##ie ##va ##bly hyper ##active da ##chs ##hun ##ds barked at the post ##man , who ignored them
    assert single.spans.tolist() == [[7, 13, 21, 22]]
    assert span_tokens(single, 0, 0, minilm_tokenizer) == "hyperactive dachshunds"
    assert span_tokens(single, 0, 1, minilm_tokenizer) == "them"
    # [CLS] the post ##man came [SEP] a post ##man left [SEP]: the same word in each segment
    assert pairs.spans.tolist() == [[2, 4, 7, 9]] and pairs.segment_starts.tolist() == [6]
    assert span_tokens(pairs, 0, 0, minilm_tokenizer) == span_tokens(pairs, 0, 1, minilm_tokenizer) == "postman"


def test_truncation_keeps_what_is_left_of_a_span_and_empties_a_span_it_removes(minilm_tokenizer) -> None:
    text = "the hyperactive dachshunds barked at the postman"
    example = SpanPairExample(text, None, chars(text, "dachshunds"), chars(text, "postman"), 1, "a")
    # max 6: [CLS] the hyper ##active da [SEP] keeps one piece of span 1 and nothing of span 2
    features = SPAN_PAIR.featurize([example], minilm_tokenizer, 6)
    assert features.spans.tolist() == [[4, 5, 0, 0]]


def test_examples_reject_spans_outside_their_text() -> None:
    with pytest.raises(ValueError, match=r"span2 \[3, 9\) is empty or outside its text of 5 characters"):
        SpanPairExample("hello", None, CharSpan(0, 1), CharSpan(3, 9))
    with pytest.raises(ValueError, match="span1 lies in segment 1, which the example does not have"):
        SpanPairExample("hello", None, CharSpan(0, 1, 1), CharSpan(0, 1))


@pytest.mark.parametrize(("text", "index", "span_text", "found"), [
    ("Then the lawyer said it.", 1, "The lawyer", "the lawyer"),          # case
    ('He told him," she said.', 2, "him", "him"),                          # trailing punctuation and quote
    ("I saw Emma's dog with her.", 2, "Emma", "Emma"),                     # possessive
    ("They saw the tape and took it.", 2, "the tape.", "the tape"),         # punctuation in the span text
    ('to " Canopy Hunter wrestles " as', 2, "Canopy\nHunter wrestles", "Canopy Hunter wrestles"),
    ("want to use it , but", 2, "it", "it"),                               # index one word early
    ("Lev Kamenev, Stalin's old friend", 2, "Kamenev, Zinoviev, and Stalin", "Kamenev"),  # mentions apart
])
def test_wsc_word_indices_become_character_spans(text: str, index: int, span_text: str, found: str) -> None:
    span = locate_words(text, index, span_text)
    assert text[span.start:span.end] == found


def test_wsc_reader_names_file_and_line_of_a_span_that_is_not_there(tmp_path: Path) -> None:
    good = {"text": "Mark told Pete lies. He was wrong.", "idx": 0, "label": True,
            "target": {"span1_index": 0, "span1_text": "Mark", "span2_index": 4, "span2_text": "He"}}
    bad = dict(good, idx=1, target=dict(good["target"], span2_index=1))
    path = tmp_path / "val.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    reader = get_task("wsc").splits["dev"].reader
    with pytest.raises(DataError, match=r"val\.jsonl:2: span2: span text 'He' is not at word 1 \('told'\) nor next"):
        reader(path)
    path.write_text(json.dumps(good) + "\n")
    [example] = reader(path)
    assert (example.span_text(example.span1), example.span_text(example.span2), example.label) == ("Mark", "He", 1)


def test_wsc_and_wic_read_the_real_data(data_dir: Path) -> None:
    wsc = {split: load_split("wsc", split, data_dir) for split in ("train", "dev", "test")}
    assert {s: len(e) for s, e in wsc.items()} == {"train": 554, "dev": 104, "test": 146}
    assert [sum(e.label == k for e in wsc["dev"]) for k in (0, 1)] == [66, 38]  # majority: 63.5 %
    assert all(e.label is None for e in wsc["test"])
    dev = {e.uid: e for e in wsc["dev"]}
    assert dev["42"].span_text(dev["42"].span2) == "it"  # the file's index points at "use"
    test = {e.uid: e for e in wsc["test"]}
    assert [test[u].span_text(test[u].span1) for u in ("80", "81", "82")] == ["Kamenev", "Stalin", "Kamenev"]
    for example in wsc["train"] + wsc["dev"]:  # every pronoun span is one word of the text
        assert example.span_text(example.span2).isalpha()

    wic = load_split("wic", "dev", data_dir)
    assert len(wic) == 638 and [sum(e.label == k for e in wic) for k in (0, 1)] == [319, 319]
    assert (wic[1].span_text(wic[1].span1), wic[1].span_text(wic[1].span2)) == ("stripe", "stripes")
    assert wic[1].span2.segment == 1 and wic[1].text_b == "They earned their stripes in Kuwait."


def test_tasks_lists_wsc_and_wic_as_span_pair_tasks(data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["tasks", "--data-dir", str(data_dir)]) == 0
    rows = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")}
    assert "| wsc | span_pair | False, True | accuracy | train (554); dev (104); test (146) |" == rows["wsc"]
    assert "| wic | span_pair | False, True | accuracy | train (absent); dev (638); test (absent) |" == rows["wic"]


def test_wic_and_wsc_load_from_the_hub_through_their_row_builders(monkeypatch: pytest.MonkeyPatch) -> None:
    wic_rows = [{"sentence1": "A check mark.", "sentence2": "Check it.", "start1": 2, "end1": 7, "start2": 0,
                 "end2": 5, "word": "check", "idx": 7, "label": 1}]
    wsc_rows = [{"text": "Mark said he would.", "span1_index": 0, "span1_text": "Mark", "span2_index": 2,
                 "span2_text": "he", "idx": 3, "label": -1}]
    rows = {"wic": wic_rows, "wsc": wsc_rows}
    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda path, name, split: rows[name]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    [wic] = load_split("wic", "train", None)
    assert (wic.span_text(wic.span1), wic.span_text(wic.span2), wic.label, wic.uid) == ("check", "Check", 1, "7")
    [wsc] = load_split("wsc", "test", None)
    assert (wsc.span_text(wsc.span1), wsc.span_text(wsc.span2), wsc.label, wsc.uid) == ("Mark", "he", None, "3")
    wic_rows[0]["end2"] = 50
    with pytest.raises(DataError, match=r"task 'wic': aps/super_glue \(wic\) split train row 0: span2 \[0, 50\)"):
        load_split("wic", "train", None)


def test_features_subset_concatenate_collate_and_cache(data_dir: Path, minilm_tokenizer, tmp_path: Path) -> None:
    wsc = get_task("wsc")
    examples = load_split(wsc, "dev", data_dir)
    features = SPAN_PAIR.featurize(examples, minilm_tokenizer, 128)
    for row in (0, 1, 42):
        for which, span in enumerate((examples[row].span1, examples[row].span2)):
            decoded = span_tokens(features, row, which, minilm_tokenizer).replace(" ", "")
            assert decoded == examples[row].span_text(span).lower().replace(" ", "")

    both = SPAN_PAIR.concatenate([features.subset(np.array([42])), features.subset(np.array([0, 1]))])
    assert both.uids == ["42", "0", "1"] and both.spans.tolist() == features.spans[[42, 0, 1]].tolist()
    batch = both.collate(np.array([2, 0]), pad_id=0)
    assert batch["spans"].shape == (2, 2, 2) and batch["spans"].reshape(2, 4).tolist() == features.spans[[1, 42]].tolist()
    assert batch["labels"].tolist() == [examples[1].label, examples[42].label]

    cache = TokenCache(tmp_path)
    cache.store("k", features)
    loaded = cache.load("k", wsc)
    assert isinstance(loaded, SpanPairFeatures) and loaded.uids == features.uids
    assert np.array_equal(loaded.spans, features.spans) and np.array_equal(loaded.labels, features.labels)
    for key, value in features.collate(np.arange(8), 0).items():
        assert torch.equal(loaded.collate(np.arange(8), 0)[key], value)


def test_head_pools_each_span_by_attention_and_classifies_the_pair() -> None:
    torch.manual_seed(0)
    head = SpanPairHead(hidden_size=4, num_outputs=2, dropout=0.0)
    tokens = torch.randn(2, 5, 4)
    spans = torch.tensor([[[1, 3], [4, 5]], [[0, 0], [2, 5]]])  # row 1's first span was truncated away
    encoded = EncoderOutput(tokens=tokens, pooled=tokens[:, 0], mask=torch.ones(2, 5))
    logits = head(encoded, {"spans": spans})
    assert logits.shape == (2, 2)

    w, b = head.attend.weight[0], head.attend.bias[0]

    def by_hand(row: int, start: int, end: int) -> torch.Tensor:
        if start == end:
            return torch.zeros(4)
        scores = torch.stack([tokens[row, t] @ w + b for t in range(start, end)])
        weights = torch.exp(scores) / torch.exp(scores).sum()
        return sum(weights[i] * tokens[row, start + i] for i in range(end - start))

    for row in range(2):
        s1, s2 = by_hand(row, *spans[row, 0].tolist()), by_hand(row, *spans[row, 1].tolist())
        assert torch.allclose(head.pool(tokens, spans[:, 0])[row], s1, atol=1e-6)
        assert torch.allclose(logits[row], head.out(torch.cat([s1, s2, s1 * s2])), atol=1e-6)
    assert torch.equal(head.pool(tokens, spans[:, 1])[0], tokens[0, 4])  # one token: its own vector


def synthetic_pairs(n: int, seed: int) -> SpanPairFeatures:
    """Random rows with two one-token spans at random places; the label is whether the two tokens are equal."""
    rng = np.random.default_rng(seed)
    rows, spans, labels = [], [], []
    for i in range(n):
        row = [2] + list(rng.integers(10, 60, size=8)) + [3]
        first, second = rng.choice(np.arange(1, 9), size=2, replace=False)
        same = i % 2
        row[second] = row[first] if same else (row[first] - 10 + int(rng.integers(1, 50))) % 50 + 10
        rows.append(row)
        spans.append([first, first + 1, second, second + 1])
        labels.append(same)
    return SpanPairFeatures(ids=np.concatenate(rows).astype(np.int32), offsets=np.arange(0, 10 * n + 1, 10),
                            segment_starts=np.full(n, 10, dtype=np.int32), labels=np.array(labels),
                            uids=[str(i) for i in range(n)], spans=np.array(spans))


def test_the_engine_learns_from_the_spans(tiny_encoder: Path) -> None:
    """Only the two span tokens decide the label, so the model must read them (chance is 1/2)."""
    task = Task(name="same-token", kind=SPAN_PAIR, metrics=("accuracy",), splits={}, labels=("no", "yes"))
    st = LabelledStageTask(task=task, head="same-token", train=synthetic_pairs(256, 0), dev={"dev": synthetic_pairs(96, 1)})
    torch.manual_seed(0)
    encoder = HFEncoder(str(tiny_encoder))
    model = MultiTaskModel(encoder, {"same-token": SpanPairHead(encoder.hidden_size, 2, dropout=0.0)})
    stage = StageConfig(name="spans", tasks=["same-token"], max_epochs=12, batch_size=16, lr=3e-3, warmup=0.0,
                        dropout=0.0)
    outcome = StageTrainer(model, stage, [st], device=torch.device("cpu"), precision="fp32", seed=0,
                           pad_id=0, progress=False).train()
    assert outcome.best.metrics["same-token"]["accuracy"] > 0.85


def test_wsc_run_through_the_cli_writes_predictions_and_a_superglue_submission(
        tiny_encoder: Path, data_dir: Path, tmp_path: Path) -> None:
    experiment = {
        "name": "wsc", "encoder": str(tiny_encoder), "seed": 1, "max_length": 128, "tensorboard": False,
        "stages": [{"name": "target", "tasks": ["wsc"], "max_steps": 3, "batch_size": 8, "max_train_examples": 32}],
    }
    config = tmp_path / "wsc.yaml"
    config.write_text(yaml.safe_dump(experiment))
    out = tmp_path / "run"
    assert main(["run", str(config), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"]) == 0

    [target] = json.loads((out / "results.json").read_text())["targets"]
    assert target["task"] == "wsc"
    assert target["majority_score"] in (pytest.approx(66 / 104), pytest.approx(38 / 104))  # 32 training rows
    stage_dir = out / "pretrained" / "target"
    rows = (stage_dir / "predictions" / "wsc-dev.tsv").read_text().splitlines()
    assert rows[0] == "uid\tprediction\tlabel" and len(rows) == 105
    gold = ["True" if e.label else "False" for e in load_split("wsc", "dev", data_dir)]
    assert [r.split("\t")[2] for r in rows[1:]] == gold
    predicted = [r.split("\t")[1] for r in rows[1:]]
    assert np.mean(np.array(predicted) == np.array(gold)) == pytest.approx(target["metrics"]["accuracy"])

    submission = [json.loads(line) for line in (stage_dir / "submission" / "WSC.jsonl").read_text().splitlines()]
    assert [s["idx"] for s in submission] == list(range(146))
    assert all(isinstance(s["label"], bool) for s in submission)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "span_pair_custom_task.yaml"


def custom_spec(**overrides: object) -> dict:
    [entry] = yaml.safe_load(EXAMPLE.read_text())["custom_tasks"]
    return entry | overrides


def test_custom_span_pair_task_reads_offsets_in_one_text_or_a_pair(tmp_path: Path) -> None:
    task = build_custom_task(CustomTaskSpec.model_validate(custom_spec()), EXAMPLE.parent)
    train = load_split(task, "train", None)
    assert len(train) == 48 and task.kind is SPAN_PAIR and task.metrics == ("accuracy", "f1")
    first = train[0]  # "After Hugo saw Clara near the station, he smiled." noun 15-20, pronoun 39-41, "no"
    assert (first.span_text(first.span1), first.span_text(first.span2), first.label, first.uid) == ("Clara", "he", 0, "0")

    rows = [{"a": "A check mark.", "b": "Check it.", "s": 2, "e": 7, "t": 0, "u": 5, "y": "same"},
            {"a": "A bank loan.", "b": "The river bank.", "s": 2, "e": 6, "t": "10", "u": 14, "y": "other"}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    columns = {"text_a": "a", "text_b": "b", "span1_start": "s", "span1_end": "e", "span2_start": "t",
               "span2_end": "u", "label": "y"}
    pairs = build_custom_task(CustomTaskSpec.model_validate(custom_spec(
        columns=columns, labels=["other", "same"], splits={"train": "pairs.jsonl", "dev": "pairs.jsonl"})), tmp_path)
    with pytest.raises(DataError, match=r"pairs\.jsonl:2: field 't' should be a character offset \(an integer\), got '10'"):
        load_split(pairs, "train", None)
    (tmp_path / "pairs.jsonl").write_text(json.dumps(rows[0]) + "\n")
    [pair] = load_split(pairs, "dev", None)
    assert (pair.span_text(pair.span1), pair.span_text(pair.span2), pair.span2.segment, pair.uid) == ("check", "Check", 1, "0")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"columns": {"text_a": "text", "span1_start": "a", "span1_end": "b", "span2_start": "c", "label": "y"}},
     "span2_end\n  Field required"),
    ({"columns": {"text_a": "text", "span1_start": 0, "span1_end": "b", "span2_start": "c", "span2_end": "d",
                  "label": "y"}}, "span1_start\n  Input should be a valid string"),
    ({"splits": {"train": "a.tsv", "dev": "b.tsv"}}, "cannot tell the format of 'a.tsv'.*set format to one of jsonl"),
    ({"metrics": ["pearson"]}, r"unknown metric\(s\) pearson for a span_pair task"),
])
def test_bad_custom_span_pair_specs(overrides: dict, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        CustomTaskSpec.model_validate(custom_spec(**overrides))


def test_the_custom_span_pair_example_trains_through_the_cli(tiny_encoder: Path, tmp_path: Path) -> None:
    experiment = yaml.safe_load(EXAMPLE.read_text())
    experiment.update(name="coref", encoder=str(tiny_encoder), tensorboard=False)
    experiment["custom_tasks"][0]["splits"] = {s: str(EXAMPLE.parent / f) for s, f in
                                               experiment["custom_tasks"][0]["splits"].items()}
    experiment["stages"][0].update(max_steps=4, batch_size=8)
    config = tmp_path / "coref.yaml"
    config.write_text(yaml.safe_dump(experiment))
    out = tmp_path / "run"
    assert main(["run", str(config), "--output-dir", str(out), "--no-progress"]) == 0
    [target] = json.loads((out / "results.json").read_text())["targets"]
    assert target["task"] == "my-coreference" and set(target["metrics"]) == {"accuracy", "f1"}
    rows = (out / "pretrained" / "target" / "predictions" / "my-coreference-dev.tsv").read_text().splitlines()
    assert len(rows) == 17 and {r.split("\t")[2] for r in rows[1:]} == {"no", "yes"}
