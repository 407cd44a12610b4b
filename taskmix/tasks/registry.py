"""The task registry: one place to look tasks up by the names users type.

Lookups ignore case, hyphens and underscores, so "STS-B", "sts_b" and "stsb" (the hub
config name) all find the same task.
"""

from __future__ import annotations

from taskmix.errors import ConfigError
from taskmix.tasks.base import Task

_TASKS: dict[str, Task] = {}
_KEYS: dict[str, str] = {}  # normalised name -> registered name


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def register_task(task: Task) -> Task:
    """Add a task; registering an identical task again is a no-op, a clashing name is an error."""
    owner = _KEYS.get(_key(task.name))
    if owner is not None:
        if _TASKS[owner] == task:
            return task
        raise ConfigError(f"task name '{task.name}' clashes with registered task '{owner}'")
    _TASKS[task.name] = task
    _KEYS[_key(task.name)] = task.name
    return task


def get_task(name: str) -> Task:
    """Find a task by any spelling of its name, or fail listing the known task names."""
    registered = _KEYS.get(_key(name))
    if registered is None:
        known = ", ".join(sorted(_TASKS))
        raise ConfigError(f"unknown task '{name}'; known tasks: {known}")
    return _TASKS[registered]


def all_tasks() -> list[Task]:
    """Every registered task, in registration order."""
    return list(_TASKS.values())
