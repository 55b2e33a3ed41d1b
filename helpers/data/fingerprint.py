"""A dataset's fingerprint: which bytes a run read, for the record of scheduled runs.

>>> fingerprint("cdnow_sample")["sha256"]          # doctest: +SKIP
'5f0c...'

The fingerprint hashes ``dataset.yaml`` and every file it names (sources, and the truth folder
of synthetic data) with SHA-256, without loading the data. A SQL source is recorded by its URL
(password removed) and table or query: the database content is not hashed (it may be large and
change under the run); compare row counts in the data-quality report instead.

Taken before and after a run, two equal fingerprints show that no file changed while the run
was reading it (e.g. an export still being written at 3 a.m.).
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from .config import DatasetConfig, SourceSpec, parse_config, resolve

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def redact_url(url: str) -> str:
    """``url`` without the password (``postgresql://user:secret@host/db`` ->
    ``postgresql://user:***@host/db``)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _sources(cfg: DatasetConfig) -> list[SourceSpec]:
    if cfg.source is not None:
        return [cfg.source]
    return [spec.source for spec in cfg.tables.values()]


def fingerprint(name_or_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Fingerprint of a dataset (by name or path, as :func:`helpers.data.load_dataset`).

    Returns ``{"dataset", "config", "sha256", "files", "sql"}``: ``files`` maps each file's path
    (relative to the dataset.yaml folder when inside it) to ``{"sha256", "bytes"}``; ``sql``
    lists SQL sources as ``{"url", "table", "query"}`` (password removed); ``sha256`` hashes all
    of it, so one value says whether anything changed. A missing file is recorded with
    ``"sha256": None`` (loading it would fail with a clear error).
    """
    path = resolve(name_or_path)
    cfg = parse_config(path)
    folder = cfg.folder

    def rel(p: Path) -> str:
        p = Path(p)
        try:
            return p.resolve().relative_to(folder.resolve()).as_posix()
        except ValueError:
            return str(p)

    paths: list[Path] = [cfg.path]
    sql: list[dict[str, str | None]] = []
    for src in _sources(cfg):
        if src.file is not None:
            paths.append(src.file)
        elif src.url is not None:
            sql.append({"url": redact_url(src.url), "table": src.table, "query": src.query})
    if cfg.truth is not None and cfg.truth.is_dir():
        paths += sorted(p for p in cfg.truth.rglob("*") if p.is_file())
    files: dict[str, dict[str, Any]] = {}
    for p in paths:
        key = rel(p)
        if p.is_file():
            files[key] = {"sha256": file_sha256(p), "bytes": p.stat().st_size}
        else:
            files[key] = {"sha256": None, "bytes": None}
    total = hashlib.sha256()
    for key in sorted(files):
        total.update(f"{key}\0{files[key]['sha256']}\n".encode())
    for entry in sql:
        total.update(f"sql\0{entry['url']}\0{entry['table']}\0{entry['query']}\n".encode())
    return {"dataset": cfg.name, "config": str(cfg.path), "sha256": total.hexdigest(),
            "files": files, "sql": sql}
