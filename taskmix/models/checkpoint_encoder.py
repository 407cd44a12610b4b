"""The `checkpoint` encoder family: the encoder of an earlier run, for pretrain-once, evaluate-many workflows.

`encoder: {checkpoint: runs/.../checkpoint.pt}` rebuilds the encoder from the family record
the checkpoint stores (any family) and loads its weights; the checkpoint's heads are
dropped, as each later stage builds its own.  Checkpoints written from such an experiment
record the original family, so they do not depend on the file they started from; the stage
cache hashes that file's contents.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from taskmix.checkpoints import encoder_weights, read_checkpoint
from taskmix.errors import CheckpointError, ConfigError
from taskmix.models.encoder import Encoder, EncoderFamily, encoder_family, register_encoder_family


@register_encoder_family
class CheckpointFamily(EncoderFamily):
    """Setting: `checkpoint`, the path of a `checkpoint.pt` written by `taskmix run`."""

    family = "checkpoint"

    @property
    def path(self) -> Path:
        return Path(self.settings["checkpoint"]).expanduser()

    def _read(self) -> dict:
        try:
            return read_checkpoint(self.path)
        except (ConfigError, CheckpointError) as exc:
            raise ConfigError(f"encoder checkpoint: {exc}") from None

    @cached_property
    def recorded(self) -> EncoderFamily:
        """The family that built the checkpoint's encoder (the weights are read again only to build)."""
        return encoder_family(self._read()["encoder"])

    def check(self) -> None:
        self.recorded.check()

    def tokenizer(self):
        return self.recorded.tokenizer()

    def build(self) -> Encoder:
        encoder = self.recorded.build()
        try:
            encoder.load_state_dict(encoder_weights(self._read()))
        except RuntimeError as exc:
            reason = str(exc).splitlines()[0]
            raise CheckpointError(f"encoder checkpoint {self.path}: its weights do not fit its encoder ({reason})") \
                from None
        return encoder

    def spec(self) -> dict:
        return self.recorded.spec()

    def weight_source(self) -> str:
        return str(self.path)

    def row_label(self) -> str:
        return self.path.resolve().parent.name
