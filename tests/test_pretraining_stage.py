"""Pretraining tasks as stage tasks: resumable corpus streams, epoch sizes, task ids and config checks."""

from __future__ import annotations

import pytest
import torch

from taskmix import metrics
from taskmix.config import TaskRef
from taskmix.errors import ConfigError
from taskmix.models.encoder import encoder_family, load_tokenizer
from taskmix.models.model import MultiTaskModel
from taskmix.pretraining import TASK_IDS, TaskIdEmbedding, build_pretraining_task
from taskmix.pretraining.stage_task import CorpusBatchStream, PretrainingStageTask
from taskmix.task_refs import labelled_task

TEXT = "The cat sat on the mat today. It was a sunny day then. We all went home early. Nobody minded that at all."


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def mlm_task(tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    path = folder / "small.txt"
    path.write_text("\n\n".join(f"{TEXT} Document {d} ends here now." for d in range(12)) + "\n")
    return build_pretraining_task("mlm", path, tokenizer, max_len=24, cache_dir=folder / "cache")


def draw(stream: CorpusBatchStream, n: int) -> list[dict[str, torch.Tensor]]:
    return [next(stream) for _ in range(n)]


def assert_same_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key]), key


def test_stream_resumes_mid_epoch_and_across_epochs(mlm_task):
    per_epoch = len(list(mlm_task.train_batches(4, 0)))
    assert per_epoch >= 3
    stream = CorpusBatchStream(mlm_task, 4, seed=5)
    draw(stream, per_epoch + 1)
    state = stream.state_dict()
    assert state == {"epoch": 1, "position": 1}
    expected = draw(stream, per_epoch + 2)
    resumed = CorpusBatchStream(mlm_task, 4, seed=5)
    resumed.load_state_dict(state)
    assert_same_batches(draw(resumed, per_epoch + 2), expected)


def test_epochs_are_reshuffled(mlm_task):
    stream = CorpusBatchStream(mlm_task, 4, seed=5)
    per_epoch = len(list(mlm_task.train_batches(4, 0)))
    first, second = draw(stream, per_epoch), draw(stream, per_epoch)
    assert any(not torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(first, second))


def test_size_is_the_rows_of_one_epoch(mlm_task):
    stage_task = PretrainingStageTask(mlm_task, "mlm", batch_size=4)
    assert stage_task.size == sum(len(b["input_ids"]) for b in mlm_task.train_batches(4, 0))


def test_task_ids_add_the_task_vector_to_the_word_embeddings(mlm_task, tiny_encoder):
    encoder = encoder_family(str(tiny_encoder)).build()
    table = TaskIdEmbedding(encoder.hidden_size)
    with torch.no_grad():
        table.table.weight[TASK_IDS["mlm"]] = 1.0
    model = MultiTaskModel(encoder, task_embedding=table)
    key = next(mlm_task.dev_batches(2))
    plain = PretrainingStageTask(mlm_task, "mlm", batch_size=2).to_batch(key, 0)
    tagged = PretrainingStageTask(mlm_task, "mlm", batch_size=2, task_ids=True).to_batch(key, 0)
    assert "task_id" not in plain and int(tagged["task_id"]) == TASK_IDS["mlm"]
    with torch.no_grad():
        words = encoder.input_embeddings()(key["input_ids"])
        torch.testing.assert_close(model.embed(tagged), words + 1.0)
        torch.testing.assert_close(model.embed(plain), words)
        assert not torch.allclose(model.encode(tagged).tokens, model.encode(plain).tokens)


def test_stage_entries_are_checked_by_kind():
    assert labelled_task("s", TaskRef(name="rte")).name == "rte"
    assert labelled_task("s", TaskRef(name="TF-IDF", corpus="wiki.txt")) is None
    with pytest.raises(ConfigError, match="pretraining task 'mlm' needs a corpus"):
        labelled_task("s", TaskRef(name="mlm"))
    with pytest.raises(ConfigError, match="'rte' reads its own splits and takes no corpus"):
        labelled_task("s", TaskRef(name="rte", corpus="wiki.txt"))
    with pytest.raises(ConfigError, match=r"unknown task 'nope'; known tasks: .*rte.*pretraining tasks .*mlm, tf"):
        labelled_task("s", TaskRef(name="nope"))


def test_corpus_entries_take_no_split_choices():
    with pytest.raises(ValueError, match="takes no train_splits"):
        TaskRef(name="mlm", corpus="wiki.txt", dev_split="test")
    with pytest.raises(ValueError, match="apply only to a pretraining task"):
        TaskRef(name="rte", options={"mask_rate": 0.2})


def test_lower_is_better_metrics_validate_as_higher_is_better():
    assert metrics.validation_value("mse", 0.3) == -0.3
    assert metrics.validation_value("cross_entropy", 2.0) < metrics.validation_value("cross_entropy", 1.0)
    assert metrics.validation_value("perplexity", 50.0) == pytest.approx(0.8)
