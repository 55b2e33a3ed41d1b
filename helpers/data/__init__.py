"""Loading datasets into the data contract, with validation and full row accounting.

>>> ds = load_dataset("cdnow_sample")              # by name, or a path to dataset.yaml / folder
>>> ds.orders.head(); ds.quality; ds.issues; ds.set_aside["orders"]

See ``docs/architecture.md`` (Dataset API) and ``docs/datasets.md`` (dataset.yaml schema, rules).
Command line: ``python -m helpers.data validate <name-or-path>``.
"""
from __future__ import annotations

from .config import available as available_datasets
from .dataset import Dataset, load_config, load_dataset
from .errors import DataContractError, Problem
from .rules import RULES, rules_markdown

__all__ = ["Dataset", "DataContractError", "Problem", "RULES", "load_dataset",
           "load_config", "available_datasets", "rules_markdown"]
