"""The handbook benchmark (issue #10): ``python -m bench`` (``make bench``).

For each size (default 10k, 100k, 1m customers):

1. **data**: ``python -m helpers.synth --customers N --seed 42 --out bench/data/<size>``; the
   bench stamps what it generates (``.bench_stamp.json``: SHA-256 of the generator source,
   customers, seed, generation time and peak RSS, SHA-256 of every file) and reuses a folder
   only when the stamp matches the current generator and the files their hashes.
   ``--data-root DIR`` uses ``DIR/<size>`` when it exists (e.g. ``/work/bench_data``),
   ``--data SIZE=DIR`` a given folder, both checked against their stamp when they have one (a
   folder without a stamp is reported as "generator not verified"). ``--generate SIZE --into
   DIR [--compare-with OTHER]`` only generates and stamps a folder for later runs (recording
   whether each file is byte-identical to ``OTHER``'s, e.g. an unstamped copy).
2. **chapters**: one runner process per chapter
   (``python -m helpers.run --params params/default.yaml --chapters NN -p dataset=<dir>``), so
   each is measured alone: wall time split into start-up, the runner's data check (its up-front
   load of the dataset) and the chapter (the rest: kernel, notebook, HTML export), and the peak
   RSS of the process tree (runner + kernel), polled with psutil.
3. **rows**: rows per table from the run's ``data_quality.txt``.

Then the exponents, the targets and the outputs: a table on stdout and ``results.json``,
``results.csv``, ``SUMMARY.md`` in ``bench/results/<run id>/`` (run id = start time, UTC). Also:
the default run (data/synthetic, all chapters in one runner call) as its own line, and the peer
comparison (:mod:`bench.peers`: on a log of about 1,000,000 transaction lines cut from the
largest size's orders, ``--peer-lines``). ``--record`` copies the three files to ``bench/reference/``.

Exit code 0 when everything was measured (whether the targets are met or not), 1 when a chapter,
the default run, a size's data or the peer comparison failed (the results are written anyway).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import report
from bench.measure import dir_bytes, machine_info, run_measured
from bench.peers import PEER_LINES
from helpers.paths import NOTEBOOKS, ROOT

BENCH = ROOT / "bench"
DATA = BENCH / "data"
RESULTS = BENCH / "results"
REFERENCE = BENCH / "reference"
STAMP = ".bench_stamp.json"
SYNTH_LOG = ".bench_synth.log"
SEED = 42
MARKERS = {"check": "Checking data:", "chapters": "Running "}


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------
# data


def generator_hash() -> str:
    """SHA-256 over the generator's source (helpers/synth.py, or every file of helpers/synth/)."""
    h = hashlib.sha256()
    files = sorted((ROOT / "helpers").glob("synth.py")) + sorted(
        (ROOT / "helpers" / "synth").rglob("*.py"))
    for f in files:
        h.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def stamp_matches(stamp: dict[str, Any] | None, customers: int, synth_hash: str) -> bool:
    """True when a data folder's stamp says: same generator source, customers and seed."""
    return bool(stamp) and stamp.get("synth_sha256") == synth_hash and \
        stamp.get("customers") == customers and stamp.get("seed") == SEED


def file_hashes(folder: Path) -> dict[str, dict[str, Any]]:
    """SHA-256 and size of every file in a dataset folder (paths relative to it; the bench's
    own stamp and generation log left out)."""
    from helpers.data.fingerprint import file_sha256

    out: dict[str, dict[str, Any]] = {}
    for f in sorted(q for q in Path(folder).rglob("*") if q.is_file()):
        rel = f.relative_to(folder).as_posix()
        if rel in (STAMP, SYNTH_LOG):
            continue
        out[rel] = {"sha256": file_sha256(f), "bytes": f.stat().st_size}
    return out


def compare_hashes(ours: dict[str, dict[str, Any]],
                   other: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Which files of two :func:`file_hashes` listings differ or exist on one side only.

    ``identical``: every file of ``ours`` exists in ``other`` with the same bytes (files only
    in ``other``, e.g. a READY marker, are listed in ``only_there`` but do not count)."""
    differ = sorted(k for k in set(ours) & set(other) if ours[k]["sha256"] != other[k]["sha256"])
    only_ours = sorted(set(ours) - set(other))
    only_other = sorted(set(other) - set(ours))
    return {"identical": not (differ or only_ours), "files": len(ours),
            "differ": differ, "only_here": only_ours, "only_there": only_other}


def verify_files(folder: Path, stamp: dict[str, Any]) -> str | None:
    """None when every file the stamp lists is there with the same SHA-256, else the problem.

    Files added later (not in the stamp) are allowed: the loader reads only the files named by
    dataset.yaml, which is itself stamped. Stamps without ``files``: nothing to check."""
    listed = stamp.get("files")
    if not listed:
        return None
    cmp = compare_hashes(listed, file_hashes(folder))
    if cmp["identical"]:
        return None
    parts = [f"{what}: {', '.join(names[:5])}" for what, names in
             (("changed", cmp["differ"]), ("missing", cmp["only_here"])) if names]
    return f"{folder}: files differ from its stamp ({'; '.join(parts)})"


def _stamped_record(folder: Path, stamp: dict[str, Any], source: str,
                    verified: bool = True) -> dict[str, Any]:
    cw = stamp.get("compared_with")
    if verified and stamp.get("files"):
        source += f"; {len(stamp['files'])} files' SHA-256 verified"
    if cw:
        source += (f"; every file byte-identical to `{cw['dir']}`" if cw.get("identical")
                   else f"; differs from `{cw['dir']}`")
        if cw.get("only_there"):
            source += f" (which also holds {', '.join(cw['only_there'][:5])})"
    return {"dir": str(folder), "source": source, "synth_sha256": stamp.get("synth_sha256"),
            "generation": stamp.get("generation"), "compared_with": cw}


def generate(customers: int, folder: Path, synth_hash: str, rss_limit: int | None,
             compare_with: Path | None = None) -> dict[str, Any]:
    """Generate ``customers`` (seed 42) into ``folder`` (which must not exist) and stamp it.

    The generator writes into ``<folder>.partial`` (its output in ``<folder>.synth.log``);
    the stamp (generator source hash, customers, seed, time and peak RSS of the generation,
    SHA-256 of every file, and with ``compare_with`` whether each file is byte-identical to that
    folder's) is written before the partial folder is renamed, so a folder with a stamp is
    complete. The log moves into the folder.
    """
    folder = Path(folder)
    if folder.exists():
        raise RuntimeError(f"{folder} exists; not overwriting it")
    tmp = folder.with_name(folder.name + ".partial")
    log_path = folder.with_name(folder.name + ".synth.log")
    if tmp.exists():
        shutil.rmtree(tmp)
    folder.parent.mkdir(parents=True, exist_ok=True)
    argv = ["-m", "helpers.synth", "--customers", str(customers), "--seed", str(SEED)]
    log(f"  generating {customers:,} customers into {folder} ...")
    m = run_measured([sys.executable, *argv, "--out", str(tmp)], cwd=ROOT, log_path=log_path,
                     rss_limit=rss_limit)
    if m.returncode != 0:
        why = " (killed: RSS over --max-rss)" if m.killed_for_memory else ""
        raise RuntimeError(f"generating {report.size_label(customers)} failed "
                           f"(exit {m.returncode}){why}; see {log_path}")
    gen = {"wall_s": round(m.wall_s, 2), "peak_rss": m.peak_rss, "bytes": dir_bytes(tmp)}
    stamp: dict[str, Any] = {"synth_sha256": synth_hash, "customers": customers, "seed": SEED,
                             "command": "python " + " ".join(argv), "generation": gen,
                             "files": file_hashes(tmp)}
    if compare_with is not None:
        cmp = compare_hashes(stamp["files"], file_hashes(Path(compare_with)))
        stamp["compared_with"] = {"dir": str(compare_with), **cmp}
    (tmp / STAMP).write_text(json.dumps(stamp, indent=2), encoding="utf-8")
    tmp.rename(folder)
    shutil.move(str(log_path), str(folder / SYNTH_LOG))
    return _stamped_record(folder, stamp, "generated", verified=False)


def ensure_data(customers: int, data_root: Path | None, synth_hash: str,
                rss_limit: int | None, data_dir: Path = DATA,
                explicit: Path | None = None) -> dict[str, Any]:
    """The dataset folder of one size.

    ``explicit`` (``--data SIZE=DIR``): that folder, checked against its stamp (a stamp of
    another generator or files that differ from it are an error). Else ``data_root/<size>``
    when it exists and its stamp (if any) matches; else ``data_dir/<size>``, reused when its
    stamp matches and its files are the stamped ones, or generated. A folder without a stamp is
    never deleted (it was not made by the bench).
    """
    label = report.size_label(customers)
    if explicit is not None:
        cand = Path(explicit)
        if not (cand / "dataset.yaml").is_file():
            raise RuntimeError(f"--data {label}={cand}: no dataset.yaml in that folder")
        stamp = read_stamp(cand)
        if stamp is None:
            return {"dir": str(cand), "source": "given with --data (no stamp: generator not "
                                                "verified)", "synth_sha256": None,
                    "generation": None}
        if not stamp_matches(stamp, customers, synth_hash):
            raise RuntimeError(f"--data {label}={cand}: its stamp is for another generator "
                               "source, size or seed; regenerate it with `python -m bench "
                               f"--generate {label} --into NEW_DIR`")
        problem = verify_files(cand, stamp)
        if problem:
            raise RuntimeError(problem)
        return _stamped_record(cand, stamp, "given with --data (stamp matches the generator)")
    if data_root is not None:
        cand = Path(data_root) / label
        if (cand / "dataset.yaml").is_file():
            stamp = read_stamp(cand)
            if stamp is None:
                return {"dir": str(cand), "source": "data root (no stamp: generator not verified)",
                        "synth_sha256": None, "generation": None}
            if stamp_matches(stamp, customers, synth_hash) and not verify_files(cand, stamp):
                return _stamped_record(cand, stamp, "data root (stamp matches the generator)")
            log(f"  {cand}: stamp is for another generator source or its files changed; "
                f"using {data_dir} instead")
    folder = data_dir / label
    stamp = read_stamp(folder)
    if (folder / "dataset.yaml").is_file() and stamp_matches(stamp, customers, synth_hash) \
            and not verify_files(folder, stamp):
        return _stamped_record(folder, stamp, "reused (stamp matches the generator)")
    if folder.exists():
        if stamp is None:
            raise RuntimeError(f"{folder} exists but has no {STAMP} (not generated by the "
                               "bench); not deleting it: remove it or choose another --data-dir")
        shutil.rmtree(folder)
    return generate(customers, folder, synth_hash, rss_limit)


def parquet_rows(data_dir: Path) -> dict[str, int]:
    """Rows per table from the Parquet metadata (fallback when no data-quality report)."""
    import pyarrow.parquet as pq
    import yaml

    cfg = yaml.safe_load((data_dir / "dataset.yaml").read_text(encoding="utf-8"))
    out = {}
    for table, rel in (cfg.get("tables") or {}).items():
        p = data_dir / rel
        if p.suffix == ".parquet" and p.is_file():
            out[table] = pq.ParquetFile(p).metadata.num_rows
    return out


# --------------------------------------------------------------------------------------------
# runs


def runner_argv(params: str, out: Path, chapters: str | None = None,
                dataset: str | None = None) -> list[str]:
    argv = [sys.executable, "-m", "helpers.run", "--params", params, "--out", str(out)]
    if chapters:
        argv += ["--chapters", chapters]
    if dataset:
        argv += ["-p", f"dataset={dataset}"]
    return argv


def phases(m) -> dict[str, Any]:
    """Start-up / data check / rest split of a runner measurement (None where not reached)."""
    t_check = m.marks.get("check")
    t_run = m.marks.get("chapters")
    return {"wall_s": round(m.wall_s, 3),
            "startup_s": None if t_check is None else round(t_check, 3),
            "data_check_s": None if t_check is None or t_run is None else round(t_run - t_check, 3),
            "chapter_s": None if t_run is None else round(m.wall_s - t_run, 3),
            "peak_rss": m.peak_rss, "peak_rss_chapter": m.peak_rss_after.get("chapters")}


def read_runner_metrics(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def cache_env(cache_dir: Path) -> dict[str, str]:
    """The environment of the measured runs: the dataset cache in a folder of this run (starts
    empty, so the first data check of a size is cold; removed after the size)."""
    return {**os.environ, "HANDBOOK_CACHE_DIR": str(cache_dir)}


def run_chapter(stem: str, data_dir: str, out: Path, params: str,
                rss_limit: int | None, env: dict[str, str] | None = None) -> dict[str, Any]:
    m = run_measured(runner_argv(params, out, stem.split("_", 1)[0], data_dir),
                     markers=MARKERS, cwd=ROOT, log_path=out.with_suffix(".log"),
                     rss_limit=rss_limit, env=env)
    rec = phases(m)
    st = (read_runner_metrics(out).get("status") or {}).get(stem, {})
    ok = m.returncode == 0 and st.get("status") == "ok"
    rec.update({"status": "ok" if ok else "failed", "returncode": m.returncode,
                "runner_seconds": st.get("seconds"), "log": str(out.with_suffix(".log"))})
    if not ok:
        rec["error"] = ("killed: tree RSS over --max-rss" if m.killed_for_memory else
                        st.get("error") or _tail(out.with_suffix(".log")))
    return rec


def _tail(path: Path, n: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return ""


def quality_rows(out: Path) -> dict[str, dict[str, int]]:
    try:
        return report.parse_quality_rows((out / "data_quality.txt").read_text(encoding="utf-8"))
    except OSError:
        return {}


def run_default(run_dir: Path, params: str, rss_limit: int | None) -> dict[str, Any]:
    """The default run: all chapters in one runner call on the bundled data."""
    out = run_dir / "runs" / "default"
    out.parent.mkdir(parents=True, exist_ok=True)
    log("default run (data/synthetic, all chapters, one runner call, cold cache) ...")
    cache = run_dir / "cache" / "default"
    m = run_measured(runner_argv(params, out), markers=MARKERS, cwd=ROOT, env=cache_env(cache),
                     log_path=run_dir / "runs" / "default.log", rss_limit=rss_limit,
                     echo=lambda line: log("  " + line) if line.startswith("[") else None)
    rec = phases(m)
    metrics = read_runner_metrics(out)
    status = metrics.get("status") or {}
    rows = quality_rows(out)
    rec.update({"status": "ok" if m.returncode == 0 else "failed", "returncode": m.returncode,
                "chapters": {s: v.get("seconds") for s, v in status.items()},
                "rows": {t: v["rows_kept"] for t, v in rows.items()},
                "rows_total": sum(v["rows_kept"] for v in rows.values()) or None,
                "customers": (rows.get("customers") or {}).get("rows_kept")})
    if m.returncode != 0:
        rec["error"] = "killed: tree RSS over --max-rss" if m.killed_for_memory else _tail(
            run_dir / "runs" / "default.log")
    log(f"  default run: {rec['wall_s']:.1f} s, peak RSS {m.peak_rss / report.GIB:.2f} GiB, "
        f"{rec['status']}")
    shutil.rmtree(cache, ignore_errors=True)
    return rec


def run_size(customers: int, stems: list[str], run_dir: Path, params: str,
             data_root: Path | None, synth_hash: str, rss_limit: int | None,
             data_dir: Path = DATA, explicit: Path | None = None) -> dict[str, Any]:
    label = report.size_label(customers)
    log(f"size {label} ({customers:,} customers)")
    data = ensure_data(customers, data_root, synth_hash, rss_limit, data_dir, explicit)
    log(f"  data: {data['dir']} ({data['source']})")
    size: dict[str, Any] = {"label": label, "customers": customers, "data": data,
                            "chapters": {}, "rows": {}, "rows_total": None}
    base = run_dir / "runs" / label
    base.mkdir(parents=True, exist_ok=True)
    cache = run_dir / "cache" / label
    for stem in stems:
        out = base / stem
        rec = run_chapter(stem, data["dir"], out, params, rss_limit, cache_env(cache))
        size["chapters"][stem] = rec
        if not size["rows"]:
            rows = quality_rows(out)
            if rows:
                size["rows"] = {t: v["rows_kept"] for t, v in rows.items()}
                size["rows_set_aside"] = {t: v["rows_set_aside"] for t, v in rows.items()}
        tail = (f"{rec['chapter_s']:.1f} s (+ data check {rec['data_check_s']:.1f} s), "
                f"peak RSS {rec['peak_rss'] / report.GIB:.2f} GiB"
                if rec["status"] == "ok" else f"FAILED: {rec.get('error')}")
        log(f"  {stem}: {tail}")
    shutil.rmtree(cache, ignore_errors=True)
    if not size["rows"]:
        size["rows"] = parquet_rows(Path(data["dir"]))
        size["rows_source"] = "parquet metadata (rows in)"
    size["rows_total"] = sum(size["rows"].values())
    size["totals"] = report.size_totals(size["chapters"])
    return size


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    return {"commit": git("rev-parse", "--short=12", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def finish(results: dict[str, Any], run_dir: Path) -> dict[str, Path]:
    results["exponents"] = report.compute_exponents(results["sizes"])
    results["targets"] = report.evaluate_targets(results)
    return report.write_all(run_dir, results)


# --------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10k,100k,1m",
                    help="comma-separated customer counts (10k, 100k, 1m, 2500, ...)")
    ap.add_argument("--chapters", default=None,
                    help="chapters to run, e.g. 01,05 (default: all)")
    ap.add_argument("--params", default="params/default.yaml", help="runner params file")
    ap.add_argument("--data-root", default=None,
                    help="use DIR/<size> when it exists (e.g. /work/bench_data) instead of "
                         "generating bench/data/<size>")
    ap.add_argument("--data", action="append", default=[], metavar="SIZE=DIR",
                    help="use DIR as the data of SIZE (repeatable), e.g. "
                         "1m=/work/bench_data/1m_stamped; checked against its stamp")
    ap.add_argument("--data-dir", default=str(DATA),
                    help="where generated data goes (default bench/data; git-ignored)")
    ap.add_argument("--generate", metavar="SIZE", default=None,
                    help="measure nothing: generate SIZE customers (seed 42) into --into DIR "
                         "(must not exist) and stamp it (generator hash, file SHA-256s)")
    ap.add_argument("--into", metavar="DIR", default=None, help="target folder of --generate")
    ap.add_argument("--compare-with", metavar="DIR", default=None,
                    help="with --generate: record in the stamp whether every file is "
                         "byte-identical to DIR's (e.g. an unstamped copy of the same size)")
    ap.add_argument("--no-default", action="store_true", help="skip the default run")
    ap.add_argument("--no-peers", action="store_true", help="skip the peer comparison")
    ap.add_argument("--peers-only", action="store_true",
                    help="only the peer comparison (make bench-peers)")
    ap.add_argument("--peer-size", default=None,
                    help="size whose orders feed the peer comparison (default: the largest "
                         "of --sizes)")
    ap.add_argument("--peer-lines", type=int, default=PEER_LINES,
                    help="the peers' transaction log (one line per order): whole customers "
                         f"(seeded random order) up to this many lines (default {PEER_LINES:,}; "
                         "0 = all orders of the peer size)")
    ap.add_argument("--peer-python", default=None,
                    help="python of the peer venv (default bench/.venv-peers/bin/python)")
    ap.add_argument("--max-rss", default="20",
                    help="GiB: kill a measured process tree above this (protects a shared "
                         "machine; 0 = no limit)")
    ap.add_argument("--peer-max-rss", default="6", help="GiB: the same for the peer processes")
    ap.add_argument("--out", default=str(RESULTS), help="parent folder of the run folders")
    ap.add_argument("--record", action="store_true",
                    help="copy SUMMARY.md, results.json, results.csv to bench/reference/")
    ap.add_argument("--note", action="append", default=[],
                    help="a note for the summary (repeatable), e.g. about the machine's load")
    ap.add_argument("--summarize", metavar="RUN_DIR", default=None,
                    help="measure nothing: recompute totals, exponents and targets from "
                         "RUN_DIR/results.json and rewrite its three files (with --record: "
                         "copy them to bench/reference/)")
    return ap


def record(paths: dict[str, Path]) -> None:
    REFERENCE.mkdir(parents=True, exist_ok=True)
    for p in paths.values():
        shutil.copy2(p, REFERENCE / p.name)
    print(f"recorded: {REFERENCE.relative_to(ROOT)}/ (commit it)")


def resummarize(run_dir: Path, do_record: bool, notes: list[str] | None = None) -> int:
    """Rewrite a run's results from its results.json (after a change of the report code)."""
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    results["notes"] = list(results.get("notes") or []) + [
        n for n in (notes or []) if n not in (results.get("notes") or [])]
    for size in results.get("sizes", []):
        size["totals"] = report.size_totals(size["chapters"])
    paths = finish(results, run_dir)
    print(report.format_text_table(report.time_table(results)))
    print(f"rewritten: {paths['summary']}")
    if do_record:
        record(paths)
    return 0


def _gib_limit(text: str) -> int | None:
    v = float(text)
    return None if v <= 0 else int(v * report.GIB)


def choose_peer_size(sizes: list[int], explicit: str | None) -> int:
    """``--peer-size`` when given, else the largest size of the run (whose data the run has
    anyway; the log is then cut to ``--peer-lines``)."""
    if explicit:
        return report.parse_size(explicit)
    return max(sizes)


def parse_data_map(items: list[str]) -> dict[int, Path]:
    """``["1m=/data/1m_stamped", ...]`` -> ``{1000000: Path(...)}`` (``--data``)."""
    out: dict[int, Path] = {}
    for item in items:
        size, sep, folder = item.partition("=")
        if not sep or not folder.strip():
            raise ValueError(f"--data {item!r}: expected SIZE=DIR, e.g. 1m=/data/1m_stamped")
        n = report.parse_size(size)
        if n in out:
            raise ValueError(f"--data: size {report.size_label(n)} given twice")
        out[n] = Path(folder.strip())
    return out


def generate_only(size: str, into: str | None, compare_with: str | None,
                  rss_limit: int | None) -> int:
    """``--generate SIZE --into DIR``: stamped data for a later run (``--data SIZE=DIR``)."""
    if not into:
        print("error: --generate needs --into DIR", file=sys.stderr)
        return 2
    customers = report.parse_size(size)
    if compare_with and not (Path(compare_with) / "dataset.yaml").is_file():
        print(f"error: --compare-with {compare_with}: no dataset.yaml there", file=sys.stderr)
        return 2
    try:
        rec = generate(customers, Path(into).absolute(), generator_hash(), rss_limit,
                       Path(compare_with).absolute() if compare_with else None)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    g = rec["generation"]
    print(f"generated {customers:,} customers into {rec['dir']}: {g['wall_s']:.0f} s, peak RSS "
          f"{g['peak_rss'] / report.GIB:.2f} GiB, {g['bytes'] / report.MIB:,.0f} MiB")
    cw = rec.get("compared_with")
    if cw:
        print(f"compared with {cw['dir']}: " + (
            f"all {cw['files']} files byte-identical" if cw["identical"]
            else f"DIFFERENT (changed {cw['differ']}, only here {cw['only_here']})")
            + (f"; only there: {cw['only_there']}" if cw["only_there"] else ""))
    print(f"use it with: --data {report.size_label(customers)}={rec['dir']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.generate:
        try:
            return generate_only(args.generate, args.into, args.compare_with,
                                 _gib_limit(args.max_rss))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    os.chdir(ROOT)
    if args.summarize:
        return resummarize(Path(args.summarize).absolute(), args.record, args.note)
    os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    try:
        sizes = report.parse_sizes(args.sizes)
        peer_size = choose_peer_size(sizes, args.peer_size)
        data_map = {n: d.absolute() for n, d in parse_data_map(args.data).items()}
        if args.peer_lines < 0:
            raise ValueError(f"--peer-lines must be >= 0; got {args.peer_lines}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from helpers.run import ConfigError, discover, select

    try:
        stems = select(list(discover(NOTEBOOKS)), args.chapters)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rss_limit = _gib_limit(args.max_rss)
    started = _dt.datetime.now(_dt.timezone.utc)
    run_id = started.strftime("%Y%m%dT%H%M%SZ") + ("-peers" if args.peers_only else "")
    run_dir = Path(args.out).absolute() / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    machine = machine_info()
    load1 = (machine.get("load_avg_1_5_15") or [0])[0]
    results: dict[str, Any] = {
        "run_id": run_id, "started": started.isoformat(timespec="seconds"), "finished": None,
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine, "git": git_info(), "under_load": load1 > 0.5,
        "options": {"sizes": [report.size_label(s) for s in sizes], "chapters": stems,
                    "params": args.params, "data_root": args.data_root,
                    "data": {report.size_label(n): str(d) for n, d in data_map.items()},
                    "peer_size": report.size_label(peer_size),
                    "peer_lines": args.peer_lines or None, "max_rss_gib": args.max_rss},
        "sizes": [], "default_run": None, "peers": None, "notes": list(args.note),
    }
    log(f"benchmark run {run_id} -> {run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir}")
    synth_hash = generator_hash()
    data_root = Path(args.data_root) if args.data_root else None
    try:
        # the peers first: a few minutes, so a long 1M size interrupted later still leaves them
        if not args.no_peers:
            from bench.peers import PEER_PYTHON, run_peers

            try:
                pdata = ensure_data(peer_size, data_root, synth_hash, rss_limit,
                                    Path(args.data_dir), data_map.get(peer_size))
                log(f"peers: data {pdata['dir']} ({pdata['source']})")
                results["peers"] = run_peers(
                    run_dir / "peers", Path(pdata["dir"]),
                    peer_python=Path(args.peer_python) if args.peer_python else PEER_PYTHON,
                    max_lines=args.peer_lines or None,
                    rss_limit=_gib_limit(args.peer_max_rss), echo=log)
                results["peers"]["data"] = pdata
            except (RuntimeError, OSError, ValueError) as exc:
                results["peers"] = {"error": f"{type(exc).__name__}: {exc}"}
            results["peers"]["size"] = report.size_label(peer_size)
            finish(results, run_dir)
        if not args.peers_only:
            if not args.no_default:
                results["default_run"] = run_default(run_dir, args.params, rss_limit)
                finish(results, run_dir)
            for n in sizes:
                try:
                    results["sizes"].append(run_size(n, stems, run_dir, args.params, data_root,
                                                     synth_hash, rss_limit, Path(args.data_dir),
                                                     data_map.get(n)))
                except RuntimeError as exc:  # e.g. the generator failed: the other sizes go on
                    results["notes"].append(f"size {report.size_label(n)} not measured: {exc}")
                    log(f"  error: {exc}")
                finish(results, run_dir)
    except KeyboardInterrupt:
        results["notes"].append("interrupted: partial results")
        log("interrupted; writing partial results")
    end = machine_info()
    results["load_avg_end"] = end.get("load_avg_1_5_15")
    results["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    paths = finish(results, run_dir)
    print()
    print(report.format_text_table(report.time_table(results)))
    print()
    for t in results["targets"]:
        print(f"  [{ {True: 'met', False: 'NOT MET', None: 'n/a'}[t['met']] :>7}] {t['target']}: "
              f"{t['gap']}")
    if results.get("peers") and not results["peers"].get("error"):
        print()
        for row in results["peers"]["rows"]:
            ratio = "—" if row.get("ratio") is None else f"{row['ratio']:.1f}x"
            print(f"  peer: {row['name']}: {ratio}, {row['same']}")
    elif results.get("peers"):
        print(f"\n  peers: {results['peers']['error']}")
    print(f"\nresults: {paths['summary'].parent}")
    if args.record:
        record(paths)
    failed = [f"{s['label']}/{c}" for s in results["sizes"] for c in s["totals"]["failed"]]
    if results.get("default_run") and results["default_run"].get("status") != "ok":
        failed.append("default run")
    if results.get("peers") and results["peers"].get("error"):
        failed.append("peers")
    failed += [n for n in results["notes"] if n.startswith("size ")]
    if failed:  # a target not met is a result; a run that could not be measured is an error
        print(f"error: not measured: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
