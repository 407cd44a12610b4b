"""Tasks: definitions, readers and loading; importing this package registers every benchmark."""

from taskmix.tasks import glue, superglue  # noqa: F401  (registers the built-in tasks)
from taskmix.tasks.loading import load_split, resolve_data_dir, split_file
from taskmix.tasks.registry import all_tasks, get_task, register_task

__all__ = ["all_tasks", "get_task", "load_split", "register_task", "resolve_data_dir", "split_file"]
