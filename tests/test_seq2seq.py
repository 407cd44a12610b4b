"""The seq2seq kind: decoder head, decoding, metrics, features and an end-to-end CLI run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
import torch
import yaml

from taskmix.checkpoints import read_checkpoint
from taskmix.cli import main
from taskmix.kinds.output_vocab import BOS_ID, EOS_ID
from taskmix.kinds.output_vocab import train_vocabulary
from taskmix.kinds.seq2seq import SEQ2SEQ, Generations, Seq2seqExample, TargetSide, bleu, perplexity
from taskmix.kinds.output_vocab import OutputVocabulary
from taskmix.kinds.seq2seq_head import Seq2seqHead, beam_search, greedy
from taskmix.models.encoder import EncoderOutput
from taskmix.models.heads import IGNORE, build_head
from taskmix.tasks import get_task, load_split


def encoded(batch: int = 3, length: int = 5, hidden: int = 16, seed: int = 0) -> EncoderOutput:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, 3:] = 0
    return EncoderOutput(torch.randn(batch, length, hidden, generator=g), torch.randn(batch, hidden, generator=g), mask)


def decoder_batch(batch: int = 3, width: int = 7, vocab: int = 30) -> dict[str, torch.Tensor]:
    inputs = torch.randint(4, vocab, (batch, width), generator=torch.Generator().manual_seed(1))
    inputs[:, 0] = BOS_ID
    labels = torch.roll(inputs, -1, dims=1)
    labels[:, -1] = EOS_ID
    labels[1, 4:] = IGNORE
    return {"decoder_input": inputs, "labels": labels}


@pytest.mark.parametrize("attention", [False, True])
def test_decoder_shapes_in_training_and_decoding(attention: bool) -> None:
    torch.manual_seed(0)
    head = build_head("seq2seq", 16, 30, 0.0, settings={"attention": attention, "beam_size": 1,
                                                        "max_decode_length": 6})
    assert hasattr(head, "bilinear") == attention and dict(head.settings)["attention"] == attention
    assert head.reduce.out_features == 8 and head.out.in_features == 8  # decoder output halved before the softmax
    enc, batch = encoded(), decoder_batch()
    assert head(enc, batch).shape == (3, 7, 30)
    head.eval()
    packed = head(enc, batch)
    assert packed.shape[0] == 3 and 2 <= packed.shape[1] <= 2 + 6
    rows = head.predict(packed, batch)
    assert [int(r[1]) for r in rows] == [7, 4, 7]  # reference tokens counted, padding not
    assert all(len(r) - 2 <= 6 and np.all(r[2:] >= 0) for r in rows)


def test_attention_ignores_padded_encoder_states() -> None:
    torch.manual_seed(0)
    head = Seq2seqHead(16, 30, dropout=0.0, attention=True)
    enc, batch = encoded(), decoder_batch()
    changed = EncoderOutput(enc.tokens.clone(), enc.pooled, enc.mask)
    changed.tokens[0, 3:] += 5.0  # row 0's padding
    changed.tokens[1, 0] += 5.0   # a real state of row 1
    before, after = head(enc, batch), head(changed, batch)
    assert torch.allclose(before[0], after[0]) and not torch.allclose(before[1], after[1])
    plain = Seq2seqHead(16, 30, dropout=0.0)
    assert torch.allclose(plain(enc, batch), plain(changed, batch))  # no attention: token states unused


def test_teacher_forcing_loss_is_the_mean_token_cross_entropy() -> None:
    """Two rows over a vocabulary of 3; the second row's second position is padding."""
    head = Seq2seqHead(16, 3)
    logits = torch.tensor([[[0.0, math.log(2), 0.0], [math.log(3), 0.0, 0.0]],
                           [[0.0, 0.0, 0.0], [5.0, 1.0, 2.0]]])
    labels = torch.tensor([[1, 0], [2, IGNORE]])
    # p = 2/4, 3/5 and 1/3 for the three scored tokens
    expected = -(math.log(2 / 4) + math.log(3 / 5) + math.log(1 / 3)) / 3
    assert head.loss(logits, {"labels": labels}).item() == pytest.approx(expected)


@pytest.mark.parametrize("attention", [False, True])
def test_beam_of_one_is_greedy(attention: bool) -> None:
    torch.manual_seed(3)
    head = Seq2seqHead(16, 12, dropout=0.0, attention=attention).eval()
    with torch.no_grad():
        head.out.weight.mul_(10)  # peaked distributions: some outputs end early, others run to the limit
    lengths = []
    for seed in range(4):
        enc = encoded(batch=5, seed=seed)
        greedy_ids = greedy(head, enc, 8)
        assert beam_search(head, enc, 1, 8) == greedy_ids
        lengths += [len(ids) for ids in greedy_ids]
    assert min(lengths) < 8 and max(lengths) > 2
    wide = beam_search(head, encoded(batch=5), 4, 8)
    assert len(wide) == 5 and all(0 <= t < 12 and t != EOS_ID for ids in wide for t in ids)


def test_bleu_matches_sacrebleu_and_a_hand_computed_value() -> None:
    hyps = ["the cat is on the mat", "a dog runs in the park ."]
    refs = ["the cat sat on the mat", "a dog runs through the park ."]
    pred = Generations(hyps, 0.0, 1)
    assert bleu(pred, refs) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score / 100)
    # one pair: n-gram precisions 5/6, 3/5, 1/4 and (no 4-gram match, exp smoothing) 1/(2*3); no brevity penalty
    assert bleu(Generations(hyps[:1], 0.0, 1), refs[:1]) == pytest.approx((5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25)
    assert bleu(Generations(refs, 0.0, 1), refs) == pytest.approx(1.0)


def test_perplexity_is_exp_of_the_mean_token_nll() -> None:
    assert perplexity(Generations([], 2 * math.log(5), 2), []) == pytest.approx(5.0)


def tiny_side(tmp_path: Path, scheme: str = "word") -> TargetSide:
    train = tmp_path / "train.txt"
    train.write_text("a dog runs\nthe cat sits\na cat runs\n")
    return TargetSide("toy-gen", OutputVocabulary(scheme, train, lambda p: p.read_text().splitlines()))


def test_features_round_trip_and_teacher_forcing_layout(tmp_path, monkeypatch, minilm_tokenizer) -> None:
    monkeypatch.setenv("TASKMIX_CACHE", str(tmp_path / "cache"))
    side = tiny_side(tmp_path)
    examples = [Seq2seqExample("source one", "a dog runs", side, "u0"),
                Seq2seqExample("second source text", "the cat", side, "u1"),
                Seq2seqExample("third", None, side, "u2")]
    features = SEQ2SEQ.featurize(examples, minilm_tokenizer, 16)
    assert list(features.target_lengths) == [3, 2, 0] and list(features.labels) == ["a dog runs", "the cat", ""]
    batch = features.collate(np.array([0, 1]), 0)
    assert batch["decoder_input"][0, :4].tolist()[0] == BOS_ID
    assert batch["decoder_input"][0, 1:4].tolist() == batch["labels"][0, :3].tolist()
    assert batch["labels"][0, 3] == EOS_ID and batch["labels"][1, 2] == EOS_ID and batch["labels"][1, 3] == IGNORE
    restored = SEQ2SEQ.load_features(features.arrays(), features.uids)
    assert list(restored.labels) == list(features.labels) and np.array_equal(restored.target_ids, features.target_ids)
    joined = SEQ2SEQ.concatenate([restored.subset(np.array([2])), features.subset(np.array([0]))])
    assert list(joined.labels) == ["", "a dog runs"] and list(joined.target_lengths) == [0, 3]
    task = type("T", (), {"name": "toy-gen"})()
    row = np.array([1.0, 3.0, *features.target_ids[:3]], dtype=np.float64)
    assert SEQ2SEQ.format_prediction(task, row) == "a dog runs"
    assert SEQ2SEQ.format_prediction(task, "gold text") == "gold text"


def test_bpe_vocabulary_decodes_to_the_original_spacing() -> None:
    tokenizer = train_vocabulary("bpe", ["Eine Gruppe von Männern.", "Ein Hund läuft."] * 20, 60)
    from taskmix.kinds.output_vocab import decode
    assert decode(tokenizer, tokenizer.encode("Ein Hund läuft.", add_special_tokens=False).ids) == "Ein Hund läuft."


def test_multi30k_reads_aligned_sides(data_dir: Path) -> None:
    task = get_task("multi30k-en-de")
    dev = load_split(task, "dev", data_dir)
    assert len(dev) == 1014 and dev[0].source.startswith("A group of men") and dev[0].target.startswith("Eine Gruppe")
    assert task.num_classes == 20_000 and task.kind.head == "seq2seq"
    assert task.head_settings == {"attention": False, "beam_size": 4}
    assert get_task("skipthought").head_settings == {"attention": True, "beam_size": 1}


def test_reddit_says_its_data_is_absent(tmp_path: Path) -> None:
    from taskmix.errors import DataError
    with pytest.raises(DataError, match="not available offline"):
        load_split(get_task("reddit"), "train", tmp_path)


def test_multi30k_trains_from_the_cli_and_scores_bleu_and_perplexity(tiny_encoder, data_dir, tmp_path,
                                                                    monkeypatch) -> None:
    monkeypatch.setenv("TASKMIX_CACHE", str(tmp_path / "cache"))
    experiment = {
        "name": "mt", "encoder": str(tiny_encoder), "max_length": 32, "tensorboard": False, "precision": "fp32",
        "stages": [{"name": "mt", "max_steps": 3, "batch_size": 8, "lr": 1e-3,
                    "tasks": [{"name": "multi30k-en-de", "head_settings": {"beam_size": 1, "max_decode_length": 2}}],
                    "max_train_examples": 32, "max_dev_examples": 12, "predict_test": False}],
    }
    config = tmp_path / "mt.yaml"
    config.write_text(yaml.safe_dump(experiment))
    out = tmp_path / "run"
    assert main(["run", str(config), "--data-dir", str(data_dir), "--output-dir", str(out), "--no-progress"]) == 0
    [target] = json.loads((out / "results.json").read_text())["targets"]
    metrics = target["metrics"]
    assert set(metrics) == {"bleu", "perplexity"} and 0.0 <= metrics["bleu"] <= 1.0
    assert 1.0 < metrics["perplexity"] < 2 * 20_000  # a barely trained decoder is near uniform (20k types)
    rows = (out / "pretrained" / "mt" / "predictions" / "multi30k-en-de-dev.tsv").read_text().splitlines()
    assert rows[0] == "uid\tprediction\tlabel" and len(rows) == 13
    gold = {e.uid: e.target for e in load_split(get_task("multi30k-en-de"), "dev", data_dir)}
    assert all(r.split("\t")[2] == " ".join(gold[r.split("\t")[0]].split()) for r in rows[1:])
    assert all(len(r.split("\t")[1].split()) <= 2 for r in rows[1:])  # two BPE pieces at most: the entry's limit
    saved = read_checkpoint(out / "pretrained" / "mt" / "checkpoint.pt")
    assert saved["heads"]["multi30k-en-de"]["settings"] == {"attention": False, "beam_size": 1, "max_decode_length": 2}

    from taskmix.evaluate import model_from_checkpoint
    rebuilt = model_from_checkpoint(saved, torch.device("cpu")).heads["multi30k-en-de"]
    assert (rebuilt.beam_size, rebuilt.max_decode_length) == (1, 2)

    experiment["stages"][0]["tasks"][0]["head_settings"] = {"beam_width": 2}
    config.write_text(yaml.safe_dump(experiment))
    assert main(["run", str(config), "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "bad"),
                 "--no-progress"]) == 2
    assert not (tmp_path / "bad" / "results.json").exists()


def test_structured_predictions_survive_the_resume_file_and_test_outputs_are_plain_lines(tmp_path) -> None:
    from taskmix.submission import write_submission
    from taskmix.tensor_state import predictions_from_plain, to_plain

    rows = np.empty(2, dtype=object)
    rows[0], rows[1] = np.array([1.5, 2.0, 7.0, 9.0]), np.array([0.5, 1.0, 8.0, 9.0])  # equal lengths stay rows
    back = predictions_from_plain(to_plain({"t": {"dev": rows}}))["t"]["dev"]
    assert back.dtype == object and len(back) == 2 and np.array_equal(back[1], rows[1])

    task = type("T", (), {"name": "gen", "submission_files": {"test": "gen.txt"},
                          "kind": type("K", (), {"submission_label": staticmethod(lambda t, v: v)})})()
    path = write_submission(task, "test", ["0", "1"], ["ein Hund", "eine Katze"], tmp_path)
    assert path.read_text() == "ein Hund\neine Katze\n"


def test_custom_seq2seq_task_from_yaml_trains_and_writes_its_test_outputs(tmp_path, tiny_encoder,
                                                                         monkeypatch) -> None:
    monkeypatch.setenv("TASKMIX_CACHE", str(tmp_path / "cache"))
    example = Path(__file__).resolve().parents[1] / "examples" / "seq2seq_custom_task.yaml"
    out = tmp_path / "custom"
    code = main(["run", str(example), "--output-dir", str(out), "--no-progress", "--set", "stages.0.max_steps=4",
                 "--set", f"encoder={tiny_encoder}"])
    assert code == 0
    [target] = json.loads((out / "results.json").read_text())["targets"]
    assert target["task"] == "word-order" and set(target["metrics"]) == {"bleu", "perplexity"}
    stage = out / "pretrained" / "target"
    dev = (stage / "predictions" / "word-order-dev.tsv").read_text().splitlines()
    assert len(dev) == 13 and dev[1].split("\t")[2] == "falls dog quiet the"
    test_rows = [line.split("\t") for line in (stage / "submission" / "word-order.tsv").read_text().splitlines()]
    assert test_rows[0] == ["index", "prediction"] and [r[0] for r in test_rows[1:]] == [str(i) for i in range(6)]
    vocabulary = output_tokenizer_words(tmp_path / "cache")
    assert all(word in vocabulary for _, text in test_rows[1:] for word in text.split())


def output_tokenizer_words(cache: Path) -> set[str]:
    """The words of the one word-level vocabulary trained in `cache`."""
    from tokenizers import Tokenizer

    [path] = (cache / "vocab").glob("*/tokenizer.json")
    return set(Tokenizer.from_file(str(path)).get_vocab())


def test_custom_seq2seq_spec_errors_name_the_problem(tmp_path) -> None:
    from pydantic import ValidationError

    from taskmix.tasks.custom import CustomTaskSpec

    base = {"name": "x", "kind": "seq2seq", "splits": {"train": "t.tsv", "dev": "d.tsv"}}
    with pytest.raises(ValidationError, match="'seq2seq' heads have no setting 'beam'; their settings: attention"):
        CustomTaskSpec.model_validate({**base, "columns": {"source": "s", "target": "t"}, "head_settings": {"beam": 2}})
    with pytest.raises(ValidationError, match="beam_size\n  Extra inputs are not permitted"):
        CustomTaskSpec.model_validate({**base, "columns": {"source": "s", "target": "t", "beam_size": 2}})
    with pytest.raises(ValidationError, match="unknown metric"):
        CustomTaskSpec.model_validate({**base, "columns": {"source": "s", "target": "t"}, "metrics": ["accuracy"]})
    with pytest.raises(ValidationError, match="target"):
        CustomTaskSpec.model_validate({**base, "columns": {"source": "s"}})
