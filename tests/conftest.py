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
def tokenizer():
    """The bundled MiniLM's tokenizer (fast to load; the weights are not needed)."""
    from taskmix.models.encoder import load_tokenizer

    return load_tokenizer("minilm")


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory, tokenizer) -> Path:
    """A random 1-layer, 16-wide BERT with MiniLM's vocabulary and tokenizer, usable as `encoder:` in a run.

    For end-to-end runs where what is checked is the engine (files, formats, resumption),
    not what a pretrained model learns; it trains in a fraction of MiniLM's time.
    """
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32)
    path = tmp_path_factory.mktemp("tiny_bert_minilm_vocab")
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
