"""Fingerprints of what a stage reads, for the stage-cache key: task data, reader code and encoder weights.

Two runs may share a finished stage only when they read the same bytes the same way: the
contents of every split a task trains or validates on (or a pretraining task's corpora),
the version of the code that turns those files into examples and features, and the
encoder's starting weights (a model directory, word vectors, an earlier run's checkpoint).
File contents are hashed, not paths, so a copy of the data directory reuses the stage while
an edited label does not.

A reader's version is its qualified name and its `VERSION` attribute (1 when absent):
a reader that starts to read the same file into different examples declares a higher
`VERSION`, which retrains every stage that used it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskmix.config import TaskRef
from taskmix.file_digests import FileDigests
from taskmix.pretraining.tokenized import CACHE_VERSION as CORPUS_VERSION
from taskmix.tasks import get_task, split_file
from taskmix.tasks.loading import companion_files, hub_source, reader_version
from taskmix.tasks.base import Task
from taskmix.task_refs import corpus_path, dev_split_names, pretraining_name
from taskmix.training.features import FEATURE_VERSION


def encoder_identity(source: str | None, digests: FileDigests) -> dict[str, Any]:
    """The encoder's starting weights (`EncoderFamily.weight_source`): a local file or directory by the contents
    of its files, a hub encoder by its name, nothing when the settings and seed alone determine them."""
    if source is None:
        return {}
    path = Path(source)
    if not path.exists():
        return {"hub": source}
    if path.is_file():
        return {"files": {path.name: digests.digest(path)}}
    files = sorted(p for p in path.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
    return {"files": {str(p.relative_to(path)): digests.digest(p) for p in files}}


def split_identity(task: Task, split: str, data_dir: Path | None, digests: FileDigests) -> dict[str, str]:
    """One split's contents (a hub split by its coordinates) and the version of its reader."""
    path = split_file(task, split, data_dir)
    if path is None:
        content = hub_source(task, split)
    else:
        content = digests.digest(path) if path.is_file() else f"missing:{path}"  # loading reports it
        companions = [digests.digest(p) if p.is_file() else f"missing:{p}" for p in companion_files(task, split, path)]
        if companions:
            content = "|".join([content, *companions])
    return {"content": content, "reader": reader_version(task.splits[split].reader)}


def task_data_identity(ref: TaskRef, data_dir: Path | None, digests: FileDigests) -> dict[str, Any]:
    """Everything a stage entry reads: its corpora, or the train and dev splits of its task."""
    if pretraining_name(ref.name):
        files = {"corpus": corpus_path(ref.corpus, data_dir)}
        if ref.dev_corpus:
            files["dev_corpus"] = corpus_path(ref.dev_corpus, data_dir)
        return {"reader": f"corpus@{CORPUS_VERSION}", **{k: digests.digest(p) for k, p in files.items()}}
    task = get_task(ref.name)
    splits = list(dict.fromkeys(ref.train_splits + dev_split_names(ref, task)))
    return {"task": task.name, "kind": task.kind.name, "labels": list(task.labels), "features": FEATURE_VERSION,
            "splits": {s: split_identity(task, s, data_dir, digests) for s in splits}}
