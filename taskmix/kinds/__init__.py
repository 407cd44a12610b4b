"""Task kinds, one module each; importing the package registers every module in it.

Adding a kind is adding a module here that calls `register_kind` (and, if it brings a new
head, `register_head`): the package imports it, and tasks can name it.
"""

import importlib
import pkgutil

from taskmix.kinds.base import KINDS, Features, TaskKind, register_kind

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["KINDS", "Features", "TaskKind", "register_kind"]
