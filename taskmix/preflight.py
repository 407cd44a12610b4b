"""Everything a run needs, checked before it writes anything into its run directory.

A run that fails here leaves the directory (and the previous run's config and results in
it) untouched.  Reading each labelled split now costs nothing extra: the runtime keeps the
tokenised splits that the stages then train on.
"""

from __future__ import annotations

from pathlib import Path

from taskmix.config import ExperimentConfig
from taskmix.runtime import Runtime
from taskmix.task_refs import corpus_path, dev_split_names, labelled_task


def check_run_inputs(cfg: ExperimentConfig, rt: Runtime, data_dir: Path | None) -> None:
    """Fail with a TaskmixError if a task, a data file or a corpus is missing or malformed.

    The encoder is checked before `rt` exists (`EncoderFamily.check`, from the experiment
    runner), since the runtime loads its tokenizer.
    """
    used = {stage.name: stage for stages in cfg.stage_sequences() for stage in stages}
    for stage in used.values():
        for ref in stage.tasks:
            task = labelled_task(stage.name, ref)
            if task is None:
                for corpus in (ref.corpus, ref.dev_corpus):
                    if corpus is not None:
                        corpus_path(corpus, data_dir)
                continue
            for split in [*ref.train_splits, *dev_split_names(ref, task)]:
                rt.splits(task).get(split)
