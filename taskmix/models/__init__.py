"""Encoders, heads and the multi-task model; importing the package registers every module in it.

A new encoder family or head kind is a module here that calls `register_encoder_family` or
`register_head`.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
