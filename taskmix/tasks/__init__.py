"""Tasks: definitions, readers and loading; importing this package registers every task.

Every module of the package is imported, so a new table of tasks is one new module that
calls `register_task`; nothing else needs to know about it.
"""

import importlib
import pkgutil

from taskmix.tasks.loading import load_split, resolve_data_dir, split_file
from taskmix.tasks.registry import all_tasks, get_task, register_task

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["all_tasks", "get_task", "load_split", "register_task", "resolve_data_dir", "split_file"]
