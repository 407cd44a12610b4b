"""The stage-cache key covers what a stage reads: data contents, encoder weights and reader versions."""

from __future__ import annotations

import shutil
from pathlib import Path

from taskmix import file_digests
from taskmix.config import TaskRef, parse_experiment
from taskmix.experiment import ExperimentRunner
from taskmix.file_digests import FileDigests
from taskmix.stage_inputs import encoder_identity, task_data_identity
from taskmix.tasks.loading import reader_version
from taskmix.tasks import get_task

STAGE = {"name": "target", "tasks": ["rte"], "batch_size": 8, "max_train_examples": 16, "max_dev_examples": 16,
         "max_steps": 2, "predict_test": False}


def copy_rte(data_dir: Path, target: Path) -> Path:
    shutil.copytree(data_dir / "glue" / "rte", target / "glue" / "rte")
    return target


def flip_first_dev_label(data: Path) -> None:
    path = data / "glue" / "rte" / "dev.tsv"
    header, first, *rest = path.read_text(encoding="utf-8").split("\n")
    fields = first.split("\t")
    fields[-1] = "entailment" if fields[-1] == "not_entailment" else "not_entailment"
    path.write_text("\n".join([header, "\t".join(fields), *rest]), encoding="utf-8")


def runner(tmp_path: Path, experiment: dict, data: Path | None, name: str) -> ExperimentRunner:
    cfg = parse_experiment({"name": name, "tensorboard": False, "max_length": 32, **experiment})
    return ExperimentRunner(cfg, data, tmp_path / name, tmp_path, progress=False, stage_cache=tmp_path / "stages")


def finished_groups(tmp_path: Path) -> int:
    return len(list((tmp_path / "stages").glob("*/result.json")))


def test_changed_dev_label_in_a_copied_data_dir_retrains_and_identical_copy_reuses(tmp_path, data_dir, tiny_encoder):
    experiment = {"encoder": str(tiny_encoder), "stages": [STAGE]}
    first = copy_rte(data_dir, tmp_path / "data-a")
    runner(tmp_path, experiment, first, "first").run()
    assert finished_groups(tmp_path) == 1

    copy = copy_rte(first, tmp_path / "data-b")  # same contents, another path: the stage is reused
    runner(tmp_path, experiment, copy, "copy").run()
    assert finished_groups(tmp_path) == 1

    flip_first_dev_label(copy)
    changed = runner(tmp_path, experiment, copy, "changed")
    changed.run()
    assert finished_groups(tmp_path) == 2  # trained afresh on the edited data


def test_custom_task_dev_label_change_changes_the_key(tmp_path, tiny_encoder):
    (tmp_path / "train.tsv").write_text("text\tlabel\n" + "".join(f"row {i}\t{'ab'[i % 2]}\n" for i in range(8)))
    dev = tmp_path / "dev.tsv"
    dev.write_text("text\tlabel\nfirst\ta\nsecond\tb\n")
    experiment = {
        "encoder": str(tiny_encoder),
        "custom_tasks": [{"name": "mine", "kind": "single_classification", "labels": ["a", "b"],
                          "splits": {"train": "train.tsv", "dev": "dev.tsv"}, "columns": {"text_a": "text",
                                                                                         "label": "label"}}],
        "stages": [dict(STAGE, tasks=["mine"])],
    }
    run = runner(tmp_path, experiment, None, "custom")
    stage = run.cfg.stages[0]
    before = run.group_key([], stage, stage.tasks)
    assert run.group_key([], stage, stage.tasks) == before
    dev.write_text("text\tlabel\nfirst\tb\nsecond\tb\n")
    assert run.group_key([], stage, stage.tasks) != before


def test_a_later_stage_key_covers_the_data_of_the_stages_before_it(tmp_path, data_dir, tiny_encoder):
    data = copy_rte(data_dir, tmp_path / "data")
    shutil.copytree(data_dir / "glue" / "mrpc", data / "glue" / "mrpc")
    experiment = {"encoder": str(tiny_encoder),
                  "stages": [dict(STAGE, name="intermediate", tasks=["rte"]), dict(STAGE, tasks=["mrpc"])]}
    run = runner(tmp_path, experiment, data, "prefix")
    intermediate, target = run.cfg.stages
    before = run.group_key([intermediate], target, target.tasks)
    flip_first_dev_label(data)
    assert run.group_key([intermediate], target, target.tasks) != before


def test_encoder_identity_follows_the_weights_of_a_local_model_and_the_name_of_a_hub_model(tmp_path, tiny_encoder):
    digests = FileDigests(None)
    copy = tmp_path / "encoder"
    shutil.copytree(tiny_encoder, copy)
    assert encoder_identity(str(copy), digests) == encoder_identity(str(tiny_encoder), digests)
    weights = next(p for p in copy.iterdir() if p.suffix in (".safetensors", ".bin"))
    weights.write_bytes(weights.read_bytes() + b" ")
    assert encoder_identity(str(copy), digests) != encoder_identity(str(tiny_encoder), digests)
    assert encoder_identity("some-org/some-model", digests) == {"hub": "some-org/some-model"}


def test_pretraining_corpus_contents_are_part_of_the_identity(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("One sentence here.\n\nAnother document.\n")
    ref = TaskRef(name="mlm", corpus="corpus.txt")
    digests = FileDigests(None)
    before = task_data_identity(ref, tmp_path, digests)
    corpus.write_text("One sentence there.\n\nAnother document.\n")
    assert task_data_identity(ref, tmp_path, digests) != before


def test_reader_version_is_the_reader_class_with_its_version():
    reader = get_task("rte").splits["dev"].reader
    assert reader_version(reader) == "taskmix.tasks.readers.TableReader@1"


def test_file_digests_hash_once_per_size_and_mtime_and_persist(tmp_path, monkeypatch):
    calls: list[Path] = []
    real = file_digests.file_digest
    monkeypatch.setattr(file_digests, "file_digest", lambda p: calls.append(p) or real(p))
    data = tmp_path / "big.tsv"
    data.write_text("a\tb\n")
    store = tmp_path / "digests.json"
    digests = FileDigests(store)
    first = digests.digest(data)
    assert digests.digest(data) == first and len(calls) == 1
    digests.save()
    assert FileDigests(store).digest(data) == first and len(calls) == 1  # read back from the store
    data.write_text("a\tc\n")
    assert FileDigests(store).digest(data) != first and len(calls) == 2
