"""Shared fixtures: the real data directory (never downloaded) and the bundled encoder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    return Path(os.environ.get("TASKMIX_DATA") or REPO_ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not (path / "glue").is_dir():
        pytest.fail(f"real data not found at {path}; set TASKMIX_DATA to the shared data directory")
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer, 16-wide random BERT with the bundled encoder's tokenizer, for end-to-end runs in seconds.

    Experiments name it by its path (`encoder: <dir>`), so they exercise the real loading code.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from taskmix.models.encoder import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"), local_files_only=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128)
    path = tmp_path_factory.mktemp("tiny_encoder")
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
