"""Shared fixtures: the real data directory (never downloaded) and a tiny random encoder.

Most tests check the engine's plumbing (configs, stages, caching, outputs), which does not
depend on what the encoder knows; they run the tiny random BERT, whose forwards take
milliseconds, instead of the bundled MiniLM. One real end-to-end run (the STILTs test in
`test_cli_run.py`) keeps MiniLM.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    return Path(os.environ.get("TASKMIX_DATA") or REPO_ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session", autouse=True)
def single_thread() -> Iterator[None]:
    """One intra-op thread: the tests' tensors are small, and on a shared CPU the threads mostly wait
    on each other (a tiny-model stage ran 20x slower with two threads on a busy 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir().resolve()  # absolute: some tests change the working directory
    if not (path / "glue").is_dir():
        pytest.fail(f"real data not found at {path}; set TASKMIX_DATA to the shared data directory")
    return path


TINY_WORDS = ("good", "bad", "film", "ok", "great", "awful", "plot", "the", "a", "is")


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """The bundled MiniLM's tokenizer (fast to load; the weights are not needed)."""
    from taskmix.models.encoder import load_tokenizer

    return load_tokenizer("minilm")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory, minilm_tokenizer) -> Path:
    """A randomly initialised 1-layer, 16-wide BERT plus MiniLM's tokenizer, saved as a local model.

    Usable as `encoder: <path>` in experiment files. Sharing MiniLM's vocabulary lets it read the
    real task data (and share the token cache with MiniLM runs). Dropout is off, so forwards are
    deterministic.
    """
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(minilm_tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    path = tmp_path_factory.mktemp("tiny-bert", numbered=False)
    BertModel(config).save_pretrained(path)
    minilm_tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_experiment_in(tiny_encoder: Path):
    """A factory for experiment files on the tiny encoder and a 40-row toy sentiment task (runs in seconds)."""
    import random

    import yaml

    def make(folder: Path, stage: dict | None = None, **top: object) -> Path:
        rng = random.Random(0)
        for split, rows in (("train", 40), ("dev", 16)):
            lines = ["id\tsentence\tlabel"]
            for i in range(rows):
                words = [rng.choice(TINY_WORDS) for _ in range(rng.randint(2, 6))]
                lines.append(f"{i}\t{' '.join(words)}\t{'pos' if {'good', 'great'} & set(words) else 'neg'}")
            (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
        data = {
            "name": "tiny", "encoder": str(tiny_encoder), "threads": 1, "precision": "fp32", "tensorboard": False,
            "custom_tasks": [{
                "name": "toy", "kind": "single_classification", "labels": ["neg", "pos"],
                "splits": {"train": str(folder / "train.tsv"), "dev": str(folder / "dev.tsv")},
                "columns": {"text_a": "sentence", "label": "label", "uid": "id"},
            }],
            "stages": [{"name": "target", "tasks": ["toy"], "max_steps": 12, "lr": 0.01, "batch_size": 4,
                        "validate_every": 3, "predict_test": False, **(stage or {})}],
            **top,
        }
        path = folder / "tiny.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return make


@pytest.fixture
def tiny_experiment(tmp_path: Path, tiny_experiment_in):
    """`tiny_experiment_in` writing into this test's tmp_path."""
    return lambda stage=None, **top: tiny_experiment_in(tmp_path, stage, **top)
