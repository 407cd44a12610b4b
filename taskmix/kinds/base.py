"""What a task kind is: everything that differs between, say, classification and regression.

A labelled task names its kind (`Task.kind`); the engine asks the kind, never the task's
type, how to parse a label cell, how to turn examples into token features, which head to
build, how to score, print and submit a prediction, and which constant predictions are
the floor a model must beat.  A new kind is one module in `taskmix.kinds` that subclasses
`TaskKind` and calls `register_kind`; nothing else in the engine changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

import numpy as np
import torch

from taskmix.errors import ConfigError, NonFinitePredictions

if TYPE_CHECKING:
    from taskmix.tasks.base import Task


class Features(Protocol):
    """The tokenised rows of one split, as a kind stores them; they batch themselves.

    `lengths` (tokens per row) drives length-grouped batching, `labels` and `uids` are
    aligned with the rows, and `arrays` / the kind's `load_features` round-trip the
    features through the on-disk token cache.
    """

    labels: np.ndarray
    uids: list[str]

    def __len__(self) -> int: ...

    @property
    def lengths(self) -> np.ndarray: ...

    def subset(self, indices: np.ndarray) -> "Features": ...

    def collate(self, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]: ...

    def arrays(self) -> dict[str, np.ndarray]: ...


class TaskKind:
    """Base of every labelled task kind; subclasses override what differs.

    `name` is the registered name (what `taskmix tasks` prints), `head` the registered head
    kind built for it (YAML custom tasks pick a kind through `taskmix.tasks.custom`),
    `metrics_allowed` / `default_metrics` what such a task may score with, `label_set`
    whether labels come from a fixed list of strings (`Task.labels`).
    """

    name: str = ""
    head: str = ""
    metrics_allowed: tuple[str, ...] = ()
    default_metrics: tuple[str, ...] = ()
    prediction_dtype: type = np.float64
    label_set: bool = False

    # -- labels ------------------------------------------------------------------------------
    def num_outputs(self, task: "Task") -> int:
        """Output units of the head; loss scaling by class count reads it too."""
        raise NotImplementedError

    def parse_label(self, text: str, labels: Sequence[str]) -> int | float:
        """The label value of a raw cell; raises ValueError with a message naming the problem."""
        raise NotImplementedError

    def hub_label(self, value: Any) -> int | float:
        """A label as the Hugging Face hub gives it (already an index or a number)."""
        raise NotImplementedError

    def label_array(self, labels: Sequence[int | float | None]) -> np.ndarray:
        """Labels as a numpy array; unlabelled rows are marked by the kind's missing value."""
        raise NotImplementedError

    # -- features ----------------------------------------------------------------------------
    def featurize(self, examples: Sequence[Any], tokenizer, max_length: int) -> Features:
        """Tokenise a split's examples once (the result is cached on disk)."""
        raise NotImplementedError

    def load_features(self, arrays: Mapping[str, np.ndarray], uids: list[str]) -> Features:
        """Rebuild features from the arrays `Features.arrays` wrote into the token cache."""
        raise NotImplementedError

    def concatenate(self, parts: list[Features]) -> Features:
        """One split made of several (e.g. SNLI dev + test as training rows)."""
        raise NotImplementedError

    # -- predictions -------------------------------------------------------------------------
    def metric_inputs(self, task: "Task", predictions: Any, labels: Any) -> tuple[Any, Any]:
        """Predictions and gold labels in the form the task's metric functions take.

        The scalar kinds' form: equal-length 1-d arrays of `prediction_dtype`, all finite (a
        non-finite prediction means a diverged model, never a poor score).  Kinds whose
        predictions are structured (tag sequences, answer spans) override this and the
        metrics they name receive what this returns.
        """
        pred = np.asarray(predictions, dtype=self.prediction_dtype)
        gold = np.asarray(labels, dtype=self.prediction_dtype)
        if pred.shape != gold.shape or pred.ndim != 1:
            raise ValueError(f"task {task.name!r}: {pred.shape} predictions for {gold.shape} labels; need equal 1-d")
        bad = int(np.count_nonzero(~np.isfinite(pred)))
        if bad:
            raise NonFinitePredictions(f"task {task.name!r}: {bad} of {len(pred)} predictions are not finite "
                                       f"(NaN or infinite); the model has diverged")
        return pred, gold

    def format_prediction(self, task: "Task", value: Any) -> str:
        """A prediction or gold label as the text of dev prediction files ("" when missing)."""
        raise NotImplementedError

    def submission_label(self, task: "Task", value: Any) -> str:
        """A test prediction as the benchmark server's TSV cell expects it."""
        raise NotImplementedError

    def submission_value(self, task: "Task", value: Any) -> Any:
        """A test prediction as the JSON value of a SuperGLUE line's "label"."""
        return json_label(self.submission_label(task, value))

    def submission_records(self, task: "Task", uids: Sequence[str], predictions: Sequence[Any]) -> list[dict]:
        """The JSON objects of a SuperGLUE submission file, one `{"idx", "label"}` per row.

        Kinds whose official file nests rows (MultiRC: answers inside questions inside
        paragraphs) override this.
        """
        return [{"idx": superglue_idx(task, uid), "label": self.submission_value(task, p)}
                for uid, p in zip(uids, predictions)]

    # -- baselines ---------------------------------------------------------------------------
    def constant_predictions(self, task: "Task") -> list[Any]:
        """The constant predictions a run must beat (every class for classification; none for regression)."""
        return []

    def majority_prediction(self, train_labels: np.ndarray) -> Any | None:
        """The constant prediction learned from training labels (the majority class), or None."""
        return None

    def is_degenerate(self, score: float, best_constant: float | None) -> bool:
        """Whether a restart's dev score is no better than guessing (seed 002's degenerate runs)."""
        raise NotImplementedError


def json_label(label: str) -> bool | int | str:
    """A label string typed as SuperGLUE's data files type that task's labels: booleans (BoolQ,
    WiC, WSC) as JSON true/false, choice indices (COPA, MultiRC) as ints, the rest as strings."""
    if label.lower() in ("true", "false"):
        return label.lower() == "true"
    return int(label) if label.isdigit() else label


def superglue_idx(task: "Task", uid: str) -> int:
    """A row id as SuperGLUE's integer `idx`."""
    try:
        return int(uid)
    except ValueError:
        raise ValueError(f"task {task.name!r}: SuperGLUE needs integer ids, got {uid!r}") from None


KINDS: dict[str, TaskKind] = {}


def register_kind(kind: TaskKind) -> TaskKind:
    """Add a kind under its name; a second kind of the same name is an error."""
    if kind.name in KINDS and KINDS[kind.name] is not kind:
        raise ConfigError(f"task kind '{kind.name}' is registered twice")
    KINDS[kind.name] = kind
    return kind
