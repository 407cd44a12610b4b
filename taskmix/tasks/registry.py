"""The task registry: one place to look tasks up by the names users type.

Lookups ignore case, hyphens and underscores, so "STS-B", "sts_b" and "stsb" (the hub
config name) all find the same task.
"""

from __future__ import annotations

from taskmix.errors import ConfigError
from taskmix.tasks.base import Task

_TASKS: dict[str, Task] = {}
_KEYS: dict[str, str] = {}  # normalised name -> registered name
_CUSTOM: set[str] = set()  # names declared by experiment files, which a later experiment may redefine


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def register_task(task: Task, custom: bool = False) -> Task:
    """Add a task; an identical task again is a no-op, a clashing name is an error.

    A custom task (declared in an experiment file) may redefine an earlier custom task of
    the same name, since experiments run one after another in one process; it may never
    shadow a built-in task.
    """
    owner = _KEYS.get(_key(task.name))
    if owner is not None:
        if _TASKS[owner] == task:
            return task
        if not (custom and owner in _CUSTOM):
            raise ConfigError(f"task name '{task.name}' clashes with registered task '{owner}'")
        del _TASKS[owner]
    _TASKS[task.name] = task
    _KEYS[_key(task.name)] = task.name
    if custom:
        _CUSTOM.add(task.name)
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
