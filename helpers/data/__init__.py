"""Loading datasets into the data contract, with validation and full row accounting.

>>> ds = load_dataset("cdnow_sample")              # by name, or a path to dataset.yaml / folder
>>> ds.orders.head(); ds.quality; ds.issues; ds.set_aside["orders"]
>>> ds.read("events", columns=["customer_id", "event_ts"])   # only these columns are read

See ``docs/architecture.md`` (Dataset API) and ``docs/datasets.md`` (dataset.yaml schema, rules).
Command line: ``python -m helpers.data validate <name-or-path>``; ``fingerprint <name-or-path>``
prints the SHA-256 fingerprint of the dataset's files as JSON (for the record of a run).
"""
from __future__ import annotations

from .config import available as available_datasets
from .dataset import Dataset, load_config, load_dataset
from .errors import DataContractError, Problem
from .fingerprint import fingerprint
from .rules import RULES, rules_markdown

__all__ = ["Dataset", "DataContractError", "Problem", "RULES", "load_dataset",
           "load_config", "available_datasets", "rules_markdown", "fingerprint"]
