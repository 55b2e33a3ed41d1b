"""Tests of the benchmark harness (bench/): sizes, growth exponents, totals, target marking, the
table / CSV / JSON / SUMMARY.md writers on fake measurements, the measuring of a process tree,
the peer comparison logic on fake outputs, and one tiny end-to-end run (slow).

No timing is asserted: timings belong in the benchmark's results, not in tests.
"""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench import report
from bench.measure import run_measured

GIB = report.GIB


# --------------------------------------------------------------------------------------------
# sizes and exponents


@pytest.mark.parametrize("text,n", [("10k", 10_000), ("100K", 100_000), ("1m", 1_000_000),
                                    ("2500", 2500), ("1.5k", 1500), (" 2k ", 2000)])
def test_parse_size(text, n):
    assert report.parse_size(text) == n
    assert report.parse_size(report.size_label(n)) == n


@pytest.mark.parametrize("bad", ["", "ten", "1.2345k", "0", "-5k", "3g"])
def test_parse_size_rejects(bad):
    with pytest.raises(ValueError):
        report.parse_size(bad)


def test_parse_sizes_sorted_unique():
    assert report.parse_sizes("1m,10k,100k,10k") == [10_000, 100_000, 1_000_000]
    with pytest.raises(ValueError):
        report.parse_sizes(" , ")


def test_growth_exponent_maths():
    # t = c * n^e  =>  the exponent is recovered from any two sizes
    for e in (0.5, 1.0, 1.15, 2.0):
        t1, t2 = 3.0 * 10_000 ** e, 3.0 * 1_000_000 ** e
        assert report.growth_exponent(10_000, t1, 1_000_000, t2) == pytest.approx(e)
    assert report.growth_exponent(10, 4.0, 100, 40.0) == pytest.approx(1.0)
    assert report.growth_exponent(10, 4.0, 100, 4.0) == pytest.approx(0.0)
    assert report.growth_exponent(10, 4.0, 100, 400.0) == pytest.approx(2.0)
    # undefined: a missing or non-positive time, equal sizes
    assert report.growth_exponent(10, None, 100, 4.0) is None
    assert report.growth_exponent(10, 0.0, 100, 4.0) is None
    assert report.growth_exponent(10, 1.0, 10, 4.0) is None


def test_exponent_pairs_consecutive_and_sorted():
    pairs = report.exponent_pairs([("100k", 100_000, 50.0), ("10k", 10_000, 10.0),
                                   ("1m", 1_000_000, None)])
    assert [(p["from"], p["to"]) for p in pairs] == [("10k", "100k"), ("100k", "1m")]
    assert pairs[0]["e"] == pytest.approx(math.log(5) / math.log(10))
    assert pairs[1]["e"] is None


# --------------------------------------------------------------------------------------------
# fake measurements


def _chapter(chapter_s, *, check=5.0, startup=1.0, rss=1 * GIB, status="ok"):
    return {"status": status, "wall_s": startup + check + chapter_s, "startup_s": startup,
            "data_check_s": check, "chapter_s": chapter_s, "peak_rss": rss,
            "peak_rss_chapter": rss}


def _size(label, n, times, *, check=5.0, rss=1 * GIB, failed=()):
    chapters = {stem: _chapter(t, check=check, rss=rss,
                               status="failed" if stem in failed else "ok")
                for stem, t in times.items()}
    return {"label": label, "customers": n, "chapters": chapters,
            "data": {"dir": f"/x/{label}", "source": "generated",
                     "generation": {"wall_s": 3.0, "peak_rss": GIB}},
            "rows": {"orders": 33 * n // 10, "order_lines": 74 * n // 10, "events": 53 * n},
            "rows_total": 60 * n, "totals": report.size_totals(chapters)}


def _results(big_times, *, big_rss=4 * GIB, default_s=150.0, failed=()):
    sizes = [_size("10k", 10_000, {"01_a": 10.0, "02_b": 20.0}),
             _size("100k", 100_000, {"01_a": 100.0, "02_b": 200.0})]
    if big_times is not None:
        sizes.append(_size("1m", 1_000_000, big_times, check=60.0, rss=big_rss, failed=failed))
    res = {"run_id": "20260101T000000Z", "command": "python -m bench", "sizes": sizes,
           "machine": {"cpus": 2, "memory_bytes": 24 * GIB, "python": "3.11",
                       "load_avg_1_5_15": [0.1, 0.1, 0.1]},
           "default_run": {"status": "ok", "wall_s": default_s, "data_check_s": 5.0,
                           "startup_s": 1.0, "peak_rss": GIB, "chapters": {"01_a": 70.0},
                           "rows": {"orders": 66_000}, "rows_total": 1_300_000,
                           "customers": 20_000},
           "peers": None, "git": {"commit": "abc", "dirty": False}}
    res["exponents"] = report.compute_exponents(res["sizes"])
    res["targets"] = report.evaluate_targets(res)
    return res


def test_size_totals_one_cold_data_check_plus_chapters():
    tot = report.size_totals({"a": _chapter(10.0, check=9.0, startup=1.0),
                              "b": _chapter(20.0, check=2.0, startup=1.0),
                              "c": _chapter(30.0, check=4.0, startup=1.0, rss=3 * GIB)})
    # the first process's data check is the cold one (fills the cache), the others are warm
    assert tot["startup_and_check_s"] == pytest.approx(10.0)
    assert tot["data_check_s"] == pytest.approx(9.0)
    assert tot["data_check_warm_s"] == pytest.approx(3.0)  # median of 2 and 4
    assert tot["handbook_s"] == pytest.approx(10.0 + 60.0)
    assert tot["peak_rss"] == 3 * GIB
    assert tot["failed"] == []
    bad = report.size_totals({"a": _chapter(10.0), "b": _chapter(5.0, status="failed")})
    assert bad["handbook_s"] is None and bad["failed"] == ["b"]


def _target(res, tid):
    return next(t for t in res["targets"] if t["id"] == tid)


def test_targets_met_and_not_met_with_gaps():
    # 1m: chapter 01 linear (1000 s), chapter 02 grows faster (2000 -> 4000 s: e = 1.30)
    res = _results({"01_a": 1000.0, "02_b": 4000.0}, big_rss=13 * GIB, default_s=150.0)
    assert _target(res, "default_run")["met"] is True
    t = _target(res, "1m_time")
    assert t["met"] is False
    assert t["measured"] == pytest.approx(1.0 + 60.0 + 5000.0)
    assert "NOT met" in t["gap"] and "over" in t["gap"]
    m = _target(res, "1m_memory")
    assert m["met"] is False and "13.00 GiB" in m["gap"]
    g1, g2 = _target(res, "growth_01_a"), _target(res, "growth_02_b")
    assert g1["met"] is True and g1["measured"] == pytest.approx(1.0)
    assert g2["met"] is False and g2["measured"] == pytest.approx(math.log(20) / math.log(10))
    assert "100k->1m" in g2["gap"]
    assert _target(res, "peer_speed")["met"] is None


def test_targets_met_within_limits():
    res = _results({"01_a": 900.0, "02_b": 200.0}, big_rss=10 * GIB, default_s=100.0)
    assert _target(res, "1m_time")["met"] is True
    assert "headroom" in _target(res, "1m_time")["gap"]
    assert _target(res, "1m_memory")["met"] is True
    assert _target(res, "growth_02_b")["met"] is True  # e = 0 between 100k and 1m


def test_targets_not_measured_without_1m_and_failed_chapter():
    res = _results(None, default_s=200.0)
    assert _target(res, "default_run")["met"] is False
    assert _target(res, "1m_time")["met"] is None
    assert "1m not in this run" in _target(res, "1m_time")["gap"]
    failed = _results({"01_a": 900.0, "02_b": 300.0}, failed=("02_b",))
    t = _target(failed, "1m_time")
    assert t["met"] is None and "02_b" in t["gap"]
    # the failed chapter has no exponent to 1m; its 10k->100k pair still counts
    assert _target(failed, "growth_02_b")["measured"] == pytest.approx(1.0)


def test_peer_targets_marked():
    res = _results(None)
    res["peers"] = {"summary": {"speed_ratio": 3.0, "identical": True, "identical_note": "ok"},
                    "rows": []}
    res["targets"] = report.evaluate_targets(res)
    t = _target(res, "peer_speed")
    assert t["met"] is False and "short" in t["gap"]
    assert _target(res, "peer_identical")["met"] is True


def test_writers_from_fake_measurements(tmp_path):
    res = _results({"01_a": 1000.0, "02_b": 4000.0})
    paths = report.write_all(tmp_path, res)
    back = json.loads(paths["json"].read_text())
    assert back["sizes"][2]["chapters"]["02_b"]["chapter_s"] == 4000.0
    rows = list(csv.DictReader(paths["csv"].open()))
    # 3 sizes x (2 chapters + total) + the default run
    assert len(rows) == 3 * 3 + 1
    row = next(r for r in rows if r["size"] == "1m" and r["step"] == "02_b")
    assert float(row["seconds"]) == 4000.0
    assert float(row["e_from_previous"]) == pytest.approx(math.log(20) / math.log(10), abs=1e-3)
    assert float(row["peak_rss_mib"]) == 4 * 1024
    md = paths["summary"].read_text()
    assert "## Targets" in md and "**NOT met**" in md
    assert "| 02_b | 20.0 | 200 | 4000 | 1.00 | 1.30 |" in md
    assert "e 10k→100k" in md and "e 100k→1m" in md
    text = report.format_text_table(report.time_table(res))
    assert text.splitlines()[0].split()[0] == "step"
    assert "handbook total" in text


def test_parse_quality_rows():
    text = """Dataset 'x' (format tables)

Rows per table (rows_in = rows_kept + rows_set_aside; repaired rows are kept):
      table  rows_in  rows_kept  rows_repaired  rows_set_aside
  customers    20000      20000             48               0
order_lines   148152     147715              0             437

Issues (7):
"""
    rows = report.parse_quality_rows(text)
    assert rows == {"customers": {"rows_in": 20000, "rows_kept": 20000, "rows_set_aside": 0},
                    "order_lines": {"rows_in": 148152, "rows_kept": 147715,
                                    "rows_set_aside": 437}}
    assert report.parse_quality_rows("no table here") == {}


def test_stamp_matches():
    from bench.harness import SEED, stamp_matches

    stamp = {"synth_sha256": "h", "customers": 10, "seed": SEED}
    assert stamp_matches(stamp, 10, "h")
    assert not stamp_matches(stamp, 10, "other generator")
    assert not stamp_matches(stamp, 11, "h")
    assert not stamp_matches({**stamp, "seed": SEED + 1}, 10, "h")
    assert not stamp_matches(None, 10, "h")


# --------------------------------------------------------------------------------------------
# measuring a process tree


CHILD = """
import sys, time
print("Checking data: x", flush=True)
time.sleep(0.5)
print("Running 1 chapter(s)", flush=True)
block = bytearray(int(sys.argv[1]) * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
time.sleep(1.0)
"""


def test_run_measured_marks_and_tree_memory(tmp_path):
    # the memory is allocated by a grandchild: the tree's RSS must include it
    parent = ("import subprocess, sys; "
              f"sys.exit(subprocess.call([sys.executable, '-c', {CHILD!r}, '300']))")
    m = run_measured([sys.executable, "-c", parent], markers={"check": "Checking data:",
                                                              "run": "Running "},
                     log_path=tmp_path / "log.txt", interval=0.05)
    assert m.returncode == 0
    assert 0 <= m.marks["check"] <= m.marks["run"] <= m.wall_s
    assert m.peak_rss >= 300 * 1024 * 1024
    assert m.peak_rss_after["run"] >= 300 * 1024 * 1024
    assert "Running 1 chapter(s)" in (tmp_path / "log.txt").read_text()


def test_run_measured_kills_tree_over_limit():
    m = run_measured([sys.executable, "-c", CHILD, "600"], rss_limit=200 * 1024 * 1024,
                     interval=0.05)
    assert m.killed_for_memory
    assert m.returncode != 0


# --------------------------------------------------------------------------------------------
# the peer comparison logic on fake outputs


def _write_side(d: Path, summary, cal, rules, timings, fit=None):
    d.mkdir(parents=True)
    summary.to_parquet(d / "summary.parquet")
    cal.to_parquet(d / "calibration.parquet")
    rules.to_parquet(d / "rules.parquet")
    (d / "timings.json").write_text(json.dumps({"timings": timings, **(fit or {})}))


def test_peer_compare_detects_identical_and_differences(tmp_path):
    from bench.peers import compare

    summ = pd.DataFrame({"customer_id": ["a", "b"], "frequency": [1.0, 0.0],
                         "recency": [2.0, 0.0], "T": [3.0, 1.0], "monetary_value": [5.0, 0.0]})
    cal = pd.DataFrame({"customer_id": ["a", "b"], "frequency_cal": [1.0, 0.0],
                        "recency_cal": [1.0, 0.0], "T_cal": [2.0, 1.0],
                        "monetary_value_cal": [5.0, 0.0], "frequency_holdout": [1.0, 0.0],
                        "monetary_value_holdout": [8.0, 0.0], "duration_holdout": [1.0, 1.0]})
    rules = pd.DataFrame({"antecedent": ["x", "y"], "consequent": ["y", "x"],
                          "support": [0.1, 0.1], "confidence": [0.5, 0.25], "lift": [2.0, 2.0]})
    params = {"r": 1.0, "alpha": 2.0, "a": 0.5, "b": 3.0}
    hb_t = {"summary": [0.1, 0.05], "calibration": [0.1, 0.1], "bgnbd_fit": [0.2],
            "pair_rules": [0.1]}
    peer_t = {"summary": [0.5], "calibration": [2.0], "bgnbd_fit": [0.4],
              "rules_encode": [0.1], "rules_mine": [0.4]}
    _write_side(tmp_path / "handbook", summ, cal, rules, hb_t,
                {"fit": {"params": params, "log_likelihood": -10.0}})
    peer_cal = cal.copy()
    peer_cal.loc[0, "monetary_value_holdout"] = 4.0  # e.g. a mean over rows, not days
    peer_rules = rules.iloc[[0]].copy()
    peer_rules["lift"] = 2.5
    _write_side(tmp_path / "peer", summ.iloc[::-1], peer_cal, peer_rules, peer_t,
                {"fit": {"error": "ConvergenceError"}, "versions": {"lifetimes": "0.11.3"}})
    res = compare(tmp_path / "handbook", tmp_path / "peer")
    rows = {r["name"].split(" (")[0]: r for r in res["rows"]}
    assert res["summary_diff"]["identical"]  # row order does not matter
    assert rows["calibration/holdout"]["same"] == "identical except monetary_value_holdout"
    assert res["calibration_diff"]["columns"]["monetary_value_holdout"]["n_differ"] == 1
    assert res["summary"]["speed_ratio"] == pytest.approx((0.5 + 2.0) / (0.05 + 0.1))
    assert res["summary"]["identical"] is True
    assert rows["BG/NBD fit"]["same"] == "peer failed"
    r = rows["pair rules"]
    assert r["same"] == "**differs**" and "1 only by the handbook" in r["details"]
    assert "lift 5.0e-01" in r["details"]


# --------------------------------------------------------------------------------------------
# end to end (tiny)


@pytest.mark.slow
def test_bench_end_to_end_tiny(tmp_path):
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--sizes", "2k", "--chapters", "03", "--no-default",
         "--no-peers", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "res"),
         "--max-rss", "6"], cwd=root, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = list((tmp_path / "res").iterdir())
    res = json.loads((run_dir / "results.json").read_text())
    (size,) = res["sizes"]
    ch = size["chapters"]["03_rfm_segments"]
    assert ch["status"] == "ok", ch
    assert ch["chapter_s"] > 0 and ch["data_check_s"] > 0 and ch["peak_rss"] > 0
    assert size["rows"]["customers"] == 2000 and size["rows"]["orders"] > 2000
    assert size["data"]["source"] == "generated"
    stamp = json.loads((tmp_path / "data" / "2k" / ".bench_stamp.json").read_text())
    assert stamp["customers"] == 2000 and len(stamp["synth_sha256"]) == 64
    assert (run_dir / "SUMMARY.md").read_text().count("03_rfm_segments") >= 2
    assert (run_dir / "results.csv").exists()
    assert "03_rfm_segments" in proc.stdout


def test_resummarize_rewrites_from_results_json(tmp_path, capsys):
    from bench.harness import resummarize

    res = _results({"01_a": 1000.0, "02_b": 4000.0})
    for size in res["sizes"]:
        size["totals"] = {"stale": True}
    res["targets"] = []
    report.write_json(tmp_path / "results.json", res)
    assert resummarize(tmp_path, do_record=False) == 0
    back = json.loads((tmp_path / "results.json").read_text())
    assert back["sizes"][2]["totals"]["handbook_s"] == pytest.approx(1.0 + 60.0 + 5000.0)
    assert {t["id"] for t in back["targets"]} >= {"1m_time", "growth_02_b"}
    assert "**NOT met**" in (tmp_path / "SUMMARY.md").read_text()
    assert (tmp_path / "results.csv").exists()


# --------------------------------------------------------------------------------------------
# the peers' log: whole customers up to N lines


def test_select_whole_customers_keeps_whole_customers_up_to_the_limit():
    from bench.peers import select_whole_customers

    rng = __import__("numpy").random.default_rng(0)
    ids = pd.Series([f"c{i}" for i in rng.integers(0, 300, size=2000)])
    counts = ids.value_counts()
    for limit in (1, 50, 999, 1500):
        keep = select_whole_customers(ids, limit, seed=7)
        kept = ids[keep]
        assert len(kept) <= limit
        # whole customers: every kept customer keeps all their rows, the others none
        vc = kept.value_counts()
        assert (vc == counts[vc.index]).all()
        # the same call again, and on shuffled rows: the same customers
        assert (select_whole_customers(ids, limit, seed=7) == keep).all()
        perm = rng.permutation(len(ids))
        again = select_whole_customers(ids.iloc[perm].reset_index(drop=True), limit, seed=7)
        assert set(ids.iloc[perm][again]) == set(kept)
    # taken in one seeded order: a larger limit keeps a superset
    small = set(ids[select_whole_customers(ids, 400, seed=7)])
    big = set(ids[select_whole_customers(ids, 1200, seed=7)])
    assert small < big
    # another seed picks other customers
    assert set(ids[select_whole_customers(ids, 400, seed=8)]) != small


def test_select_whole_customers_stops_before_the_customer_that_would_exceed():
    from bench.peers import select_whole_customers

    # 3 customers with 5 rows each: 12 lines keep two customers (10 rows), 15 keep all
    ids = pd.Series(["a"] * 5 + ["b"] * 5 + ["c"] * 5)
    assert select_whole_customers(ids, 12).sum() == 10
    assert select_whole_customers(ids, 15).all()
    assert select_whole_customers(ids, None).all()
    assert select_whole_customers(ids, 4).sum() == 0
    with pytest.raises(ValueError, match="max_rows"):
        select_whole_customers(ids, -1)
    with pytest.raises(ValueError, match="missing customer ids"):
        select_whole_customers(pd.Series(["a", None, "b"]), 1)


def test_prepare_inputs_restricts_transactions_and_baskets_to_the_same_orders(tmp_path):
    from bench.peers import main, prepare_inputs
    from helpers.paths import ROOT

    full = prepare_inputs(ROOT / "data" / "synthetic", tmp_path / "all", max_lines=None)
    # the part through the command line of the measured preparation process
    assert main(["--prepare", "--data", str(ROOT / "data" / "synthetic"), "--out",
                 str(tmp_path / "part"), "--max-lines", "20000"]) == 0
    part = json.loads((tmp_path / "part" / "input.json").read_text())
    assert full["rows"] == full["orders_in_source"] > 20_000
    assert part["orders_in_source"] == full["rows"]
    assert 19_000 < part["rows"] <= 20_000
    tx_all = pd.read_parquet(tmp_path / "all" / "transactions.parquet")
    tx = pd.read_parquet(tmp_path / "part" / "transactions.parquet")
    assert len(tx) == part["rows"] and tx["customer_id"].nunique() == part["customers"]
    # whole customers: each kept customer has all their orders
    n_all = tx_all["customer_id"].value_counts()
    n_part = tx["customer_id"].value_counts()
    assert (n_part == n_all[n_part.index]).all()
    # baskets: exactly the order lines of the kept customers' orders
    b_all = pd.read_parquet(tmp_path / "all" / "baskets.parquet")
    b = pd.read_parquet(tmp_path / "part" / "baskets.parquet")
    assert part["baskets"] == b["order_id"].nunique() <= part["rows"]
    assert len(b) < len(b_all) and set(b["order_id"]) < set(b_all["order_id"])
    assert "restricted to whole customers up to 20,000" in part["description"]


# --------------------------------------------------------------------------------------------
# data folders: --data, stamps with file hashes, --generate


def test_parse_data_map_and_peer_size():
    from bench.harness import choose_peer_size, parse_data_map

    assert parse_data_map(["1m=/d/1m_stamped", "10k = /d/x"]) == {
        1_000_000: Path("/d/1m_stamped"), 10_000: Path("/d/x")}
    for bad in (["1m"], ["1m="], ["big=/d"]):
        with pytest.raises(ValueError):
            parse_data_map(bad)
    with pytest.raises(ValueError, match="twice"):
        parse_data_map(["1m=/a", "1000k=/b"])
    assert choose_peer_size([10_000, 100_000, 1_000_000], None) == 1_000_000
    assert choose_peer_size([10_000], "100k") == 100_000


def _fake_dataset(folder: Path, payload: bytes = b"orders") -> Path:
    folder.mkdir(parents=True)
    (folder / "dataset.yaml").write_text("tables: {}\n")
    (folder / "orders.parquet").write_bytes(payload)
    (folder / "truth").mkdir()
    (folder / "truth" / "k.json").write_text("{}")
    return folder


def test_file_hashes_and_verify_detect_changed_added_missing(tmp_path):
    from bench.harness import STAMP, compare_hashes, file_hashes, verify_files

    d = _fake_dataset(tmp_path / "d")
    (d / STAMP).write_text("{}")  # the stamp itself is not listed
    listed = file_hashes(d)
    assert set(listed) == {"dataset.yaml", "orders.parquet", "truth/k.json"}
    stamp = {"files": listed}
    assert verify_files(d, stamp) is None
    assert verify_files(d, {}) is None  # an old stamp without hashes: nothing to check
    (d / "orders.parquet").write_bytes(b"orderz")
    assert "changed: orders.parquet" in verify_files(d, stamp)
    (d / "orders.parquet").write_bytes(b"orders")
    (d / "READY").write_bytes(b"")  # an added file does not break the stamp
    assert verify_files(d, stamp) is None
    (d / "truth" / "k.json").unlink()
    assert "missing: truth/k.json" in verify_files(d, stamp)
    assert compare_hashes(listed, listed)["identical"]
    more = {**listed, "READY": {"sha256": "x", "bytes": 0}}
    cmp = compare_hashes(listed, more)
    assert cmp["identical"] and cmp["only_there"] == ["READY"]
    assert not compare_hashes(more, listed)["identical"]


def test_ensure_data_explicit_folder_checked_against_its_stamp(tmp_path):
    from bench.harness import SEED, STAMP, ensure_data, file_hashes

    d = _fake_dataset(tmp_path / "given")
    rec = ensure_data(10, None, "h", None, tmp_path / "gen", explicit=d)
    assert rec["dir"] == str(d) and "generator not verified" in rec["source"]
    stamp = {"synth_sha256": "h", "customers": 10, "seed": SEED, "files": file_hashes(d),
             "compared_with": {"dir": "/x/10", "identical": True}}
    (d / STAMP).write_text(json.dumps(stamp))
    rec = ensure_data(10, None, "h", None, tmp_path / "gen", explicit=d)
    assert "stamp matches" in rec["source"] and "3 files' SHA-256 verified" in rec["source"]
    assert "every file byte-identical to `/x/10`" in rec["source"]
    with pytest.raises(RuntimeError, match="another generator"):
        ensure_data(10, None, "new generator", None, tmp_path / "gen", explicit=d)
    (d / "orders.parquet").write_bytes(b"tampered")
    with pytest.raises(RuntimeError, match="files differ from its stamp"):
        ensure_data(10, None, "h", None, tmp_path / "gen", explicit=d)
    with pytest.raises(RuntimeError, match="no dataset.yaml"):
        ensure_data(10, None, "h", None, tmp_path / "gen", explicit=tmp_path / "nothing")


def test_ensure_data_never_deletes_a_folder_it_did_not_make(tmp_path):
    from bench.harness import ensure_data

    d = _fake_dataset(tmp_path / "gen" / "10")  # no stamp: made outside the bench
    with pytest.raises(RuntimeError, match="not deleting it"):
        ensure_data(10, None, "h", None, tmp_path / "gen")
    assert (d / "orders.parquet").read_bytes() == b"orders"


def _fake_synth(monkeypatch, payload: bytes = b"orders", returncode: int = 0):
    """Replace the generator process: write a tiny dataset into its --out folder."""
    import bench.harness as h
    from bench.measure import Measurement

    calls = []

    def fake(argv, **kw):
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1])
        if returncode == 0:
            _fake_dataset(out, payload)
        Path(kw["log_path"]).write_text("synth log\n")
        return Measurement(argv=list(argv), returncode=returncode, wall_s=1.5, peak_rss=GIB)

    monkeypatch.setattr(h, "run_measured", fake)
    return calls


def test_generate_writes_a_verified_stamp_and_compares(tmp_path, monkeypatch):
    from bench.harness import STAMP, SYNTH_LOG, ensure_data, generate, read_stamp

    calls = _fake_synth(monkeypatch)
    other = _fake_dataset(tmp_path / "unstamped")
    rec = generate(10, tmp_path / "10_stamped", "h", None, compare_with=other)
    assert calls[0][calls[0].index("--customers") + 1] == "10"
    d = tmp_path / "10_stamped"
    stamp = read_stamp(d)
    assert stamp["synth_sha256"] == "h" and stamp["customers"] == 10
    assert set(stamp["files"]) == {"dataset.yaml", "orders.parquet", "truth/k.json"}
    assert stamp["compared_with"]["identical"] is True and rec["compared_with"]["identical"]
    assert stamp["generation"]["wall_s"] == 1.5 and stamp["generation"]["peak_rss"] == GIB
    assert (d / SYNTH_LOG).read_text() == "synth log\n"
    assert not (tmp_path / "10_stamped.partial").exists()
    assert not (tmp_path / "10_stamped.synth.log").exists()
    # usable with --data, and the log / stamp do not count as data files
    assert "stamp matches" in ensure_data(10, None, "h", None, tmp_path, explicit=d)["source"]
    assert (d / STAMP).exists()
    with pytest.raises(RuntimeError, match="exists"):
        generate(10, d, "h", None)
    # a different payload is reported as different, not hidden
    rec2 = generate(10, tmp_path / "b", "h", None, compare_with=_fake_dataset(
        tmp_path / "other", b"other bytes"))
    assert rec2["compared_with"]["differ"] == ["orders.parquet"]
    assert "differs from" in rec2["source"]


def test_generate_only_cli(tmp_path, monkeypatch, capsys):
    from bench.harness import main

    _fake_synth(monkeypatch)
    assert main(["--generate", "2k", "--into", str(tmp_path / "x")]) == 0
    assert "--data 2k=" in capsys.readouterr().out
    assert main(["--generate", "2k"]) == 2
    assert main(["--generate", "2k", "--into", str(tmp_path / "x")]) == 1  # exists
    _fake_synth(monkeypatch, returncode=1)
    assert main(["--generate", "2k", "--into", str(tmp_path / "y")]) == 1
    assert not (tmp_path / "y").exists()


def test_report_names_the_peer_log_and_peer_data():
    res = _results(None)
    res["peers"] = {"size": "1m", "input": {"rows": 999_990, "description": "d"},
                    "data": {"dir": "/data/1m_stamped", "source": "given with --data",
                             "generation": {"wall_s": 150.0, "peak_rss": 7 * GIB}},
                    "summary": {"speed_ratio": 30.0, "identical": True}, "rows": [],
                    "notes": []}
    res["targets"] = report.evaluate_targets(res)
    t = _target(res, "peer_speed")
    assert "(999,990-line log)" in t["target"] and t["met"] is True
    md = report.summary_markdown(res)
    assert "| 1m (peers only) | `/data/1m_stamped` | given with --data | 150 | 7.00 |" in md
