"""Benchmark results: sizes, growth exponents, targets, and the table / JSON / CSV / markdown.

Everything here is a pure function of the measurements (a ``results`` dict, see
:func:`bench.harness.run_benchmark`), so the harness logic is unit-tested with fake numbers
(``tests/test_bench.py``); nothing here measures or asserts a timing.

Growth exponent: if time grows like ``size ** e``, two sizes give
``e = log(t2 / t1) / log(n2 / n1)`` (``n`` = customers). ``e = 1`` is linear; the target is
``e <= 1.15`` for every chapter between consecutive sizes.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

GIB = 1024 ** 3
MIB = 1024 ** 2

#: The targets of issue #10 on the 2-core, 24 GiB machine.
TARGETS: dict[str, float] = {
    "default_run_s": 180.0,       # default run (data/synthetic, all chapters) <= 3 min
    "big_total_s": 1200.0,        # 1M customers, full handbook <= 20 min
    "big_peak_rss": 12.0 * GIB,   # ... and <= 12 GiB peak RSS
    "growth_exponent": 1.15,      # time ~ size^e, e <= 1.15 per chapter
    "peer_speed_ratio": 5.0,      # handbook summary + calibration >= 5x faster than lifetimes
}
BIG_CUSTOMERS = 1_000_000


# --------------------------------------------------------------------------------------------
# sizes and exponents


def parse_size(text: str) -> int:
    """``"10k"`` -> 10000, ``"1m"`` -> 1000000, ``"2500"`` -> 2500 (case-insensitive)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", str(text))
    if not m:
        raise ValueError(f"size {text!r}: expected a number of customers like 10k, 100k, 1m "
                         "or 2500")
    value = float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()]
    if value < 1 or value != int(value):
        raise ValueError(f"size {text!r}: must be a whole number of customers >= 1")
    return int(value)


def size_label(n: int) -> str:
    """``10000`` -> ``"10k"``, ``1000000`` -> ``"1m"``, ``2500`` -> ``"2500"``."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def parse_sizes(spec: str) -> list[int]:
    """Comma-separated sizes, sorted ascending, duplicates removed."""
    sizes = sorted({parse_size(t) for t in spec.split(",") if t.strip()})
    if not sizes:
        raise ValueError("no sizes given (e.g. --sizes 10k,100k,1m)")
    return sizes


def growth_exponent(n1: float, t1: float | None, n2: float, t2: float | None) -> float | None:
    """``log(t2 / t1) / log(n2 / n1)``; ``None`` when a time is missing or not positive or the
    sizes are equal."""
    if t1 is None or t2 is None or t1 <= 0 or t2 <= 0 or n1 <= 0 or n2 <= 0 or n1 == n2:
        return None
    return math.log(t2 / t1) / math.log(n2 / n1)


def exponent_pairs(points: Sequence[tuple[str, int, float | None]]) -> list[dict[str, Any]]:
    """Exponents between consecutive sizes of ``[(label, customers, seconds), ...]`` (sorted by
    customers): ``[{"from", "to", "e"}]``; ``e`` is None where a time is missing."""
    pts = sorted(points, key=lambda p: p[1])
    return [{"from": a[0], "to": b[0], "e": growth_exponent(a[1], a[2], b[1], b[2])}
            for a, b in zip(pts, pts[1:])]


# --------------------------------------------------------------------------------------------
# derived numbers of one size


def parse_quality_rows(text: str) -> dict[str, dict[str, int]]:
    """Rows per table from a data-quality report (``data_quality.txt`` of a run): table ->
    ``{"rows_in", "rows_kept", "rows_set_aside"}``. Empty when the table is not found."""
    out: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith("Rows per table"))
    except StopIteration:
        return out
    header = lines[start + 1].split()
    for ln in lines[start + 2:]:
        if not ln.strip():
            break
        parts = ln.split()
        if len(parts) != len(header):
            break
        row = dict(zip(header, parts))
        try:
            out[row["table"]] = {k: int(row[k]) for k in ("rows_in", "rows_kept", "rows_set_aside")}
        except (KeyError, ValueError):
            break
    return out


def size_totals(chapters: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The handbook total of one size from its per-chapter measurements (in run order).

    One runner call runs the data check once, then the chapters. The chapter processes of a
    size share a dataset cache that starts empty, so the *first* process's data check is the
    cold one (it validates the data and fills the cache) and the later ones are warm:
    ``handbook_s`` = the first process's start-up + data check + the sum of the chapter times
    (``None`` when a chapter failed or was not measured); ``data_check_s`` is that cold check,
    ``data_check_warm_s`` the median of the others. ``peak_rss`` is the largest tree peak of any
    chapter process.
    """
    chs = list(chapters.values())
    first = chs[0] if chs else {}
    cold_pre = (first["startup_s"] + first["data_check_s"]
                if first.get("startup_s") is not None and first.get("data_check_s") is not None
                else None)
    warm = [c["data_check_s"] for c in chs[1:] if c.get("data_check_s") is not None]
    ok = chs and all(c.get("status") == "ok" and c.get("chapter_s") is not None for c in chs)
    total = (cold_pre + sum(c["chapter_s"] for c in chs)) if ok and cold_pre is not None else None
    peaks = [c["peak_rss"] for c in chs if c.get("peak_rss")]
    return {"data_check_s": first.get("data_check_s"),
            "data_check_warm_s": statistics.median(warm) if warm else None,
            "startup_and_check_s": cold_pre, "handbook_s": total,
            "peak_rss": max(peaks) if peaks else None,
            "failed": [s for s, c in chapters.items() if c.get("status") != "ok"]}


def compute_exponents(sizes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Exponents per chapter (chapter time), of the data check and of the handbook total."""
    stems: list[str] = []
    for s in sizes:
        stems += [c for c in s["chapters"] if c not in stems]
    per = {stem: exponent_pairs([(s["label"], s["customers"],
                                  _ok_time(s["chapters"].get(stem)))
                                 for s in sizes]) for stem in stems}
    return {
        "per_chapter": per,
        "data_check": exponent_pairs([(s["label"], s["customers"], s["totals"]["data_check_s"])
                                      for s in sizes]),
        "total": exponent_pairs([(s["label"], s["customers"], s["totals"]["handbook_s"])
                                 for s in sizes]),
    }


def _ok_time(ch: Mapping[str, Any] | None) -> float | None:
    if not ch or ch.get("status") != "ok":
        return None
    return ch.get("chapter_s")


# --------------------------------------------------------------------------------------------
# targets


def _target(tid: str, what: str, limit: float, measured: float | None, unit: str,
            note: str = "", higher_is_better: bool = False) -> dict[str, Any]:
    """One target row: ``met`` is True/False, or None when not measured; ``gap`` in words."""
    if measured is None:
        return {"id": tid, "target": what, "limit": limit, "measured": None, "unit": unit,
                "met": None, "gap": note or "not measured in this run"}
    met = measured >= limit if higher_is_better else measured <= limit
    fmt = _fmt_value(measured, unit)
    lim = _fmt_value(limit, unit)
    if met and unit == "e":
        gap = f"met: {fmt} vs {lim}"
    elif met:
        margin = (measured / limit - 1) if higher_is_better else (1 - measured / limit)
        gap = f"met: {fmt} vs {lim} ({margin:.0%} headroom)"
    else:
        diff = (limit - measured) if higher_is_better else (measured - limit)
        rel = "" if unit == "e" else f" ({diff / limit:.0%})"
        gap = (f"NOT met: {fmt} vs {lim}, {_fmt_value(diff, unit)} "
               f"{'short' if higher_is_better else 'over'}{rel}")
    if note:
        gap += f"; {note}"
    return {"id": tid, "target": what, "limit": limit, "measured": measured, "unit": unit,
            "met": met, "gap": gap}


def _fmt_value(v: float, unit: str) -> str:
    if unit == "s":
        return f"{v:.0f} s" if abs(v) >= 100 else f"{v:.1f} s"
    if unit == "bytes":
        return f"{v / GIB:.2f} GiB"
    if unit == "x":
        return f"{v:.1f}x"
    return f"{v:.2f}"


def evaluate_targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every target of issue #10 marked met / not met / not measured, with its gap."""
    rows: list[dict[str, Any]] = []
    d = results.get("default_run")
    if d and d.get("status") == "ok":
        rows.append(_target("default_run", "default run (data/synthetic, all chapters, one "
                            "runner call) <= 3 min", TARGETS["default_run_s"], d["wall_s"], "s"))
    else:
        rows.append(_target("default_run", "default run (data/synthetic, all chapters, one "
                            "runner call) <= 3 min", TARGETS["default_run_s"], None, "s",
                            "failed: " + str(d.get("error")) if d else "not run (--no-default)"))
    big = next((s for s in results.get("sizes", []) if s["customers"] == BIG_CUSTOMERS), None)
    if big is None:
        note = "size 1m not in this run"
        rows.append(_target("1m_time", "1M customers, full handbook <= 20 min",
                            TARGETS["big_total_s"], None, "s", note))
        rows.append(_target("1m_memory", "1M customers, peak RSS <= 12 GiB",
                            TARGETS["big_peak_rss"], None, "bytes", note))
    else:
        tot = big["totals"]
        failed = tot.get("failed") or []
        note = f"chapters failed: {', '.join(failed)}" if failed else ""
        rows.append(_target("1m_time", "1M customers, full handbook <= 20 min",
                            TARGETS["big_total_s"], tot["handbook_s"], "s", note))
        rows.append(_target("1m_memory", "1M customers, peak RSS <= 12 GiB",
                            TARGETS["big_peak_rss"], tot["peak_rss"], "bytes", note))
    exps = results.get("exponents", {}).get("per_chapter", {})
    for stem, pairs in exps.items():
        known = [p for p in pairs if p["e"] is not None]
        what = f"growth exponent {stem} <= 1.15"
        if not known:
            reason = "needs two sizes" if not pairs else "a chapter run failed or was not measured"
            rows.append(_target(f"growth_{stem}", what, TARGETS["growth_exponent"], None, "e",
                                reason))
            continue
        worst = max(known, key=lambda p: p["e"])
        rows.append(_target(f"growth_{stem}", what, TARGETS["growth_exponent"], worst["e"], "e",
                            f"worst pair {worst['from']}->{worst['to']}"))
    peers = results.get("peers") or {}
    ratio = (peers.get("summary") or {}).get("speed_ratio")
    lines = (peers.get("input") or {}).get("rows")
    on = f" ({lines:,}-line log)" if lines else ""
    rows.append(_target("peer_speed", "handbook rfm_summary + calibration_holdout >= 5x faster "
                        f"than lifetimes{on}", TARGETS["peer_speed_ratio"], ratio, "x",
                        "" if ratio is not None else "peer comparison not run",
                        higher_is_better=True))
    same = (peers.get("summary") or {}).get("identical")
    if peers.get("summary"):
        rows.append({"id": "peer_identical", "target": "identical per-customer results to "
                     "lifetimes", "limit": None, "measured": same, "unit": "",
                     "met": bool(same), "gap": peers["summary"].get("identical_note", "")})
    return rows


# --------------------------------------------------------------------------------------------
# output


def _s(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _gib(v: float | None) -> str:
    return "—" if v is None else f"{v / GIB:.2f}"


def _e(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def _chapter_cell(ch: Mapping[str, Any] | None) -> str:
    if not ch:
        return "—"
    if ch.get("status") != "ok":
        return "FAILED"
    return _s(ch.get("chapter_s"))


def time_table(results: Mapping[str, Any]) -> list[list[str]]:
    """Rows of the main table: header, data check, chapters, total, peak RSS, rows."""
    sizes = results.get("sizes", [])
    exps = results.get("exponents", {})
    pair_names = [f"e {p['from']}→{p['to']}" for p in exps.get("total", [])]
    head = ["step"] + [f"{s['label']} (s)" for s in sizes] + pair_names
    rows = [head]
    rows.append(["data check (runner, cold)"] + [_s(s["totals"]["data_check_s"]) for s in sizes]
                + [_e(p["e"]) for p in exps.get("data_check", [])])
    rows.append(["data check (warm cache)"]
                + [_s(s["totals"].get("data_check_warm_s")) for s in sizes]
                + [""] * len(pair_names))
    stems = list(exps.get("per_chapter", {}))
    for stem in stems:
        rows.append([stem] + [_chapter_cell(s["chapters"].get(stem)) for s in sizes]
                    + [_e(p["e"]) for p in exps["per_chapter"][stem]])
    rows.append(["handbook total"] + [_s(s["totals"]["handbook_s"]) for s in sizes]
                + [_e(p["e"]) for p in exps.get("total", [])])
    rows.append(["peak RSS, GiB (tree)"] + [_gib(s["totals"]["peak_rss"]) for s in sizes]
                + [""] * len(pair_names))
    for table in ("orders", "order_lines", "events"):
        rows.append([f"rows: {table}"] + [_rows(s, table) for s in sizes] + [""] * len(pair_names))
    rows.append(["rows: all tables"] + [f"{s.get('rows_total') or 0:,}" for s in sizes]
                + [""] * len(pair_names))
    return rows


def _rows(size: Mapping[str, Any], table: str) -> str:
    v = (size.get("rows") or {}).get(table)
    return "—" if v is None else f"{v:,}"


def format_text_table(rows: Sequence[Sequence[str]]) -> str:
    """Fixed-width text table (first column left-aligned, the others right-aligned)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        out.append("  ".join(cells).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def markdown_table(rows: Sequence[Sequence[Any]]) -> str:
    """GitHub markdown table; the first row is the header."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    head, *body = rows
    lines = ["| " + " | ".join(cell(c) for c in head) + " |",
             "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in body]
    return "\n".join(lines)


def _mark(met: bool | None) -> str:
    return {True: "met", False: "**NOT met**", None: "not measured"}[met]


def csv_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (size, chapter), per size total, and the default run."""
    out: list[dict[str, Any]] = []
    exps = results.get("exponents", {})
    for s in results.get("sizes", []):
        base = {"kind": "chapter", "size": s["label"], "customers": s["customers"],
                "rows_orders": (s.get("rows") or {}).get("orders"),
                "rows_order_lines": (s.get("rows") or {}).get("order_lines"),
                "rows_events": (s.get("rows") or {}).get("events"),
                "rows_total": s.get("rows_total")}
        for stem, ch in s["chapters"].items():
            e_prev = next((p["e"] for p in exps.get("per_chapter", {}).get(stem, [])
                           if p["to"] == s["label"]), None)
            out.append({**base, "step": stem, "status": ch.get("status"),
                        "wall_s": ch.get("wall_s"), "startup_s": ch.get("startup_s"),
                        "data_check_s": ch.get("data_check_s"), "seconds": ch.get("chapter_s"),
                        "peak_rss_mib": _mib(ch.get("peak_rss")), "e_from_previous": e_prev})
        tot = s["totals"]
        e_prev = next((p["e"] for p in exps.get("total", []) if p["to"] == s["label"]), None)
        out.append({**base, "kind": "total", "step": "handbook total",
                    "status": "ok" if not tot.get("failed") else "failed", "wall_s": None,
                    "startup_s": None, "data_check_s": tot.get("data_check_s"),
                    "seconds": tot.get("handbook_s"), "peak_rss_mib": _mib(tot.get("peak_rss")),
                    "e_from_previous": e_prev})
    d = results.get("default_run")
    if d:
        out.append({"kind": "default_run", "size": "default", "customers": d.get("customers"),
                    "rows_orders": (d.get("rows") or {}).get("orders"),
                    "rows_order_lines": (d.get("rows") or {}).get("order_lines"),
                    "rows_events": (d.get("rows") or {}).get("events"),
                    "rows_total": d.get("rows_total"), "step": "default run (all chapters)",
                    "status": d.get("status"), "wall_s": d.get("wall_s"),
                    "startup_s": d.get("startup_s"), "data_check_s": d.get("data_check_s"),
                    "seconds": d.get("wall_s"), "peak_rss_mib": _mib(d.get("peak_rss")),
                    "e_from_previous": None})
    return out


CSV_FIELDS = ["kind", "size", "customers", "step", "status", "wall_s", "startup_s",
              "data_check_s", "seconds", "peak_rss_mib", "e_from_previous", "rows_orders",
              "rows_order_lines", "rows_events", "rows_total"]


def _mib(v: float | None) -> float | None:
    return None if v is None else round(v / MIB, 1)


def write_csv(path: str | os.PathLike[str], results: Mapping[str, Any]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for row in csv_rows(results):
        w.writerow({k: ("" if row.get(k) is None else
                        (round(row[k], 3) if isinstance(row[k], float) else row[k]))
                    for k in CSV_FIELDS})
    Path(path).write_text(buf.getvalue(), encoding="utf-8")


def write_json(path: str | os.PathLike[str], results: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n",
                          encoding="utf-8")


def summary_markdown(results: Mapping[str, Any]) -> str:
    """SUMMARY.md: targets, the time table, the default run, data generation, peers, method."""
    m = results.get("machine", {})
    lines = [f"# Benchmark summary — run {results.get('run_id', '?')}", ""]
    lines.append(f"Command: `{results.get('command', '')}`  ")
    lines.append(f"Commit: `{(results.get('git') or {}).get('commit', '?')}`"
                 f"{' (with uncommitted changes)' if (results.get('git') or {}).get('dirty') else ''}"
                 f"; started {results.get('started', '?')}, finished {results.get('finished', '?')}  ")
    lines.append(f"Machine: {m.get('cpus', '?')} cores, "
                 f"{(m.get('memory_bytes') or 0) / GIB:.1f} GiB, Python {m.get('python', '?')}; "
                 f"load average at start {m.get('load_avg_1_5_15')} and end "
                 f"{results.get('load_avg_end')}"
                 + (" — **timings under load** (other work on the machine)"
                    if results.get("under_load") else ""))
    lines += ["", "## Targets", ""]
    trows = [["target", "measured", "status", "gap"]]
    for t in results.get("targets", []):
        meas = "—" if t["measured"] is None else (
            str(t["measured"]) if t["unit"] == "" else _fmt_value(t["measured"], t["unit"]))
        trows.append([t["target"], meas, _mark(t["met"]), t["gap"]])
    lines += [markdown_table(trows), ""]
    lines += ["## Time per chapter and growth", "",
              "Seconds per chapter, each in its own runner process (the chapter after the "
              "runner's data check: kernel start, notebook, HTML export); the data check is "
              "the runner's up-front load of the dataset, timed separately: *cold* in the first "
              "process of a size (an empty dataset cache per size: it validates the data and "
              "fills the cache), *warm* in the others. The handbook total is start-up + the cold "
              "data check + all chapters, as one runner call on new data would run them. "
              "e = log(t2/t1)/log(n2/n1) between consecutive sizes (n = customers). Peak RSS is "
              "the largest sum over the runner and its kernel seen in any chapter process.", "",
              markdown_table(time_table(results)), ""]
    d = results.get("default_run")
    if d:
        lines += ["## Default run", "",
                  f"`python -m helpers.run --params params/default.yaml` on data/synthetic "
                  f"({d.get('customers') or '?'} customers, {d.get('rows_total') or 0:,} rows), "
                  f"all chapters in one runner call: **{_s(d.get('wall_s'))} s** wall "
                  f"(data check {_s(d.get('data_check_s'))} s), peak RSS "
                  f"{_gib(d.get('peak_rss'))} GiB, status {d.get('status')}.", ""]
        if d.get("chapters"):
            lines += [markdown_table([["chapter", "seconds (runner)"]]
                                     + [[k, _s(v)] for k, v in d["chapters"].items()]), ""]
    gens = [(s["label"], s["data"]) for s in results.get("sizes", [])]
    pdata = (results.get("peers") or {}).get("data")
    if pdata and pdata.get("dir") not in {d.get("dir") for _, d in gens}:
        gens.append((f"{(results.get('peers') or {}).get('size', '?')} (peers only)", pdata))
    if gens:
        grows = [["size", "data folder", "source", "generation (s)", "generation peak RSS (GiB)"]]
        for label, dd in gens:
            g = dd.get("generation") or {}
            grows.append([label, f"`{_short_path(dd.get('dir'))}`", dd.get("source", ""),
                          _s(g.get("wall_s")), _gib(g.get("peak_rss"))])
        lines += ["## Data", "",
                  "`python -m helpers.synth --customers N --seed 42`; a folder is reused only "
                  "when its stamp holds the SHA-256 of the current generator source and the "
                  "SHA-256 of every file it lists match (generation numbers are from the stamp "
                  "when reused); a folder without a stamp (made outside the bench) is used "
                  "as given, *generator not verified*.", "",
                  markdown_table(grows), ""]
    peers = results.get("peers")
    if peers:
        lines += peers_markdown(peers)
    notes = results.get("notes") or []
    if notes:
        lines += ["## Notes", ""] + [f"* {n}" for n in notes] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _short_path(p: str | None) -> str:
    """A path relative to the repository when inside it (readable, no machine-specific root)."""
    if not p:
        return ""
    root = Path(__file__).resolve().parents[1]
    try:
        return Path(p).resolve().relative_to(root).as_posix()
    except ValueError:
        return str(p)


def peers_markdown(peers: Mapping[str, Any]) -> list[str]:
    """The peer comparison section (see :mod:`bench.peers` for the fields)."""
    lines = ["## Peer comparison", ""]
    if peers.get("error"):
        return lines + [f"Not run: {peers['error']}", ""]
    inp = peers.get("input", {})
    desc = inp.get("description", "")
    if inp.get("source"):
        desc = desc.replace(str(inp["source"]), _short_path(inp["source"]))
    lines += [f"Input: {desc} — {inp.get('rows', 0):,} transaction rows, "
              f"{inp.get('customers', 0):,} customers, {inp.get('baskets', 0):,} baskets; "
              f"peers from `bench/.venv-peers` ({', '.join(f'{k} {v}' for k, v in (peers.get('versions') or {}).items())}). "
              "Each side runs in its own process on the same Parquet files; only the function "
              "calls are timed; outputs are compared in the project venv.", ""]
    rows = [["comparison", "handbook (s)", "peer (s)", "speed ratio", "same result?", "details"]]
    for item in peers.get("rows", []):
        ratio = item.get("ratio")
        rows.append([item["name"], _s(item.get("handbook_s")), _s(item.get("peer_s")),
                     "—" if ratio is None else f"{ratio:.1f}x", item.get("same", ""),
                     item.get("details", "")])
    lines += [markdown_table(rows), ""]
    for note in peers.get("notes", []):
        lines.append(f"* {note}")
    lines.append("")
    return lines


def write_all(run_dir: str | os.PathLike[str], results: Mapping[str, Any]) -> dict[str, Path]:
    """results.json, results.csv and SUMMARY.md in ``run_dir``."""
    d = Path(run_dir)
    paths = {"json": d / "results.json", "csv": d / "results.csv", "summary": d / "SUMMARY.md"}
    write_json(paths["json"], results)
    write_csv(paths["csv"], results)
    paths["summary"].write_text(summary_markdown(results), encoding="utf-8")
    return paths
