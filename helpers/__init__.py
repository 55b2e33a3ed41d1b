"""CRM Analytics Handbook helpers: the package every chapter notebook imports as ``hb``.

Kept light on import: the names below are loaded on first use, so ``import helpers`` (or
``helpers.paths``) does not pull in pandas, matplotlib or the data layer.

* :func:`setup`, :class:`Context`, :func:`read_metrics` — chapter set-up and metrics
  (:mod:`helpers.notebook`);
* :func:`load_dataset` — load and validate a dataset by name or path (:mod:`helpers.data`).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "setup": "helpers.notebook",
    "Context": "helpers.notebook",
    "read_metrics": "helpers.notebook",
    "load_dataset": "helpers.data",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from helpers.data import load_dataset
    from helpers.notebook import Context, read_metrics, setup


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'helpers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later look-ups bypass __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
