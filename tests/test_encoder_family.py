"""Encoder families: the experiment's `encoder:` settings build the encoder and its tokenizer, checkpoints record them."""

from __future__ import annotations

import pytest

from taskmix.config import HFEncoderConfig
from taskmix.errors import ConfigError
from taskmix.models.encoder import HFFamily, encoder_family


def test_config_settings_round_trip_through_the_checkpoint_record() -> None:
    family = encoder_family(HFEncoderConfig(name="minilm", gradient_checkpointing=True, label="m").build_settings())
    assert isinstance(family, HFFamily)
    assert family.spec() == {"family": "hf", "name": "minilm", "gradient_checkpointing": True}
    again = encoder_family(family.spec())
    assert again.spec() == family.spec()
    encoder = again.build()
    assert encoder.model.is_gradient_checkpointing
    tokenizer = again.tokenizer()
    assert tokenizer("a test")["input_ids"][0] == tokenizer.cls_token_id


def test_a_bare_name_is_a_hugging_face_model_as_older_checkpoints_store_it() -> None:
    assert encoder_family("minilm").spec() == {"family": "hf", "name": "minilm"}


def test_unknown_family_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown encoder family 'cnn'; known: bilstm, checkpoint, hf"):
        encoder_family({"family": "cnn", "name": "x"})
