"""``python -m helpers.data validate <name-or-path> [--rule RULE=ACTION ...]``,
``python -m helpers.data fingerprint <name-or-path>`` and ``python -m helpers.data list``.

``validate`` prints the data-quality report and exits 0, or prints the contract error and
exits 2.
"""
from __future__ import annotations

import argparse
import json
import sys

from .config import available
from .dataset import load_dataset
from .errors import DataContractError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.data",
                                     description="Validate datasets against the data contract.")
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="load a dataset and print its data-quality report")
    v.add_argument("dataset", help="dataset name (data/<name>) or path to dataset.yaml/folder")
    v.add_argument("--rule", action="append", default=[], metavar="RULE=ACTION",
                   help="override a rule, e.g. --rule orders.zero_value=keep (repeatable)")
    sub.add_parser("list", help="list the datasets under data/")
    f = sub.add_parser("fingerprint", help="SHA-256 of the dataset's files, as JSON")
    f.add_argument("dataset", help="dataset name or path")
    args = parser.parse_args(argv)
    if args.command == "fingerprint":
        from .fingerprint import fingerprint

        try:
            print(json.dumps(fingerprint(args.dataset), indent=2))
        except DataContractError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        return 0
    if args.command == "list":
        for name, path in available().items():
            print(f"{name}\t{path}")
        return 0
    rules = {}
    for item in args.rule:
        if "=" not in item:
            parser.error(f"--rule {item!r}: expected RULE=ACTION")
        key, action = item.split("=", 1)
        rules[key.strip()] = action.strip()
    try:
        ds = load_dataset(args.dataset, rules=rules)
    except DataContractError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(ds.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
