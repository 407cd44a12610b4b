"""Self-supervised pretraining tasks: MLM, the 14 auxiliary losses of seed 003 and Real/Fake.

`build_pretraining_task(name, corpus_path, tokenizer, max_len)` gives the engine a task with
`name`, `head_kind`, `num_outputs`, `metric`, `train_batches` and `dev_batches`; importing
this package registers the head kinds the tasks use.  Vocabulary heads (MLM, SBO) need
`head.tie_to(encoder)` after `build_head`.
"""

from taskmix.pretraining.metrics import Metric, MetricSums, evaluate_batch
from taskmix.pretraining.task_ids import TaskIdEmbedding
from taskmix.pretraining.tasks import TASK_IDS, TASKS, PretrainingTask, build_pretraining_task
from taskmix.pretraining.tokenized import CorpusSettings, TokenizedCorpus, load_corpus

__all__ = [
    "TASKS",
    "TASK_IDS",
    "CorpusSettings",
    "Metric",
    "MetricSums",
    "PretrainingTask",
    "TaskIdEmbedding",
    "TokenizedCorpus",
    "build_pretraining_task",
    "evaluate_batch",
    "load_corpus",
]
