"""The generator's scaling machinery changes nothing in what it generates.

The exact replicas (Poisson quantiles, day -> timestamp conversion, per-row Dirichlet, fixed-width
ids) must equal the library functions they replace bit for bit, the chunked paths must equal the
unchunked ones, and the coded events table must write and read back as the pandas table. The slow
test regenerates the committed default dataset and compares every file with it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import special, stats

from helpers import synth

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small() -> synth.SyntheticData:
    return synth.generate(2000, seed=11)


def test_poisson_ppf_equals_scipy_including_boundaries():
    rng = np.random.default_rng(0)
    n = 200_000
    mu = np.concatenate([rng.choice(synth.CATEGORY_EXTRA_QTY, n), rng.gamma(2.0, 0.8, n)])
    q = rng.random(2 * n)
    # quantiles placed on and right next to the CDF steps, where rounding decides the answer
    k = rng.integers(0, 6, 2 * n).astype(float)
    edge = special.pdtr(k, mu) + rng.choice([-1e-12, 0.0, 1e-12, 1e-7], 2 * n)
    q = np.where(rng.random(2 * n) < 0.3, np.clip(edge, 1e-15, 1 - 1e-15), q)
    expected = stats.poisson.ppf(q, mu)
    np.testing.assert_array_equal(synth._poisson_ppf(q, mu), expected)


def test_day_conversion_equals_pandas():
    rng = np.random.default_rng(1)
    days = np.concatenate([rng.random(300_000) * 731, np.arange(0, 731, 1 / 1440),
                           rng.integers(0, 731, 50_000) + rng.random(50_000) * 1e-9,
                           rng.integers(1, 731, 50_000) - rng.random(50_000) * 1e-12])
    td = pd.to_timedelta(days, unit="D").to_numpy().view(np.int64)
    np.testing.assert_array_equal(synth._day_ns(days), td)
    t0 = pd.Timestamp("2024-01-01")
    ts = (t0 + pd.to_timedelta(days, unit="D")).floor("s").to_numpy()
    np.testing.assert_array_equal(synth._ts_floor_s(t0, days), ts)
    with pytest.raises(ValueError, match="NaN"):
        synth._day_ns(np.array([1.0, np.nan]))


def test_dirichlet_replica_equals_numpy_and_uses_the_same_stream():
    alpha = np.random.default_rng(2).random((3000, 10)) * 3 + 0.05
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    loop = np.vstack([r1.dirichlet(a) for a in alpha])
    np.testing.assert_array_equal(synth._dirichlet_like_numpy(r2, alpha), loop)
    assert r1.random() == r2.random()  # the generator state after both is the same
    with pytest.raises(ValueError, match="stick-breaking"):
        synth._dirichlet_like_numpy(np.random.default_rng(0), np.full((2, 10), 0.05))


def test_format_ids_equals_string_formatting():
    nums = np.array([0, 1, 9, 10, 99_999_999, 100_000_000, 1_234_567_890_123])
    got = synth._format_ids("S", nums, 8).to_pylist()
    assert got == [f"S{x:08d}" for x in nums]
    assert synth._format_ids("O", np.arange(0), 8).to_pylist() == []
    with pytest.raises(ValueError, match="negative"):
        synth._format_ids("S", np.array([-1]), 8)


def test_events_stay_coded_until_read(small):
    raw = small.tables.raw("events")
    assert isinstance(raw, synth.EventLog)
    n = small.tables.n_rows("events")
    events = small.tables["events"]
    assert len(events) == n and list(events.columns) == [
        "customer_id", "event_ts", "event_type", "session_id", "product_id", "device", "channel"]
    assert set(events["event_type"]) == set(synth.EVENT_TYPES)
    assert events["session_id"].str.fullmatch(r"S\d{8}").all()
    assert events.duplicated().sum() > 0  # the planted exact duplicates survive the coding


def test_written_events_equal_pandas_writer(small, tmp_path):
    """The row-group writer produces the same file as DataFrame.to_parquet (bytes and content)."""
    out = synth.write_dataset(small, tmp_path / "syn")
    frame = small.tables["events"]
    frame.to_parquet(tmp_path / "pandas_events.parquet", index=False, compression="zstd")
    assert (out / "events.parquet").read_bytes() == (tmp_path / "pandas_events.parquet").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "events.parquet"), frame)


def test_chunked_paths_equal_unchunked(small, tmp_path, monkeypatch):
    """With tiny chunks (many row groups, chunked category draws) the data is the same."""
    monkeypatch.setattr(synth, "EVENT_CHUNK", 1_000)
    chunked = synth.generate(2000, seed=11)
    out = synth.write_dataset(chunked, tmp_path / "chunked")
    assert pq.ParquetFile(out / "events.parquet").metadata.num_row_groups > 10
    for name in small.tables:
        pd.testing.assert_frame_equal(chunked.tables[name], small.tables[name], obj=name)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "events.parquet"), small.tables["events"])
    pd.testing.assert_frame_equal(chunked.truth_customers, small.truth_customers)
    assert chunked.facts == small.facts


def test_event_rows_grow_linearly_with_customers():
    """The documented scale: events per customer do not depend on the size (no hidden n^2)."""
    a = synth.generate(1000, seed=3)
    b = synth.generate(4000, seed=3)
    per_a = a.tables.n_rows("events") / 1000
    per_b = b.tables.n_rows("events") / 4000
    assert 40 < per_a < 70 and 40 < per_b < 70
    assert abs(per_b / per_a - 1) < 0.1


@pytest.mark.slow
def test_default_dataset_is_reproduced_exactly(tmp_path):
    """Regenerating the committed data/synthetic gives the same files (every notebook's committed
    output depends on it)."""
    ref = ROOT / "data" / "synthetic"
    out = synth.write_dataset(synth.generate(20_000, seed=42), tmp_path / "s20k")
    files = sorted(p.relative_to(ref) for p in ref.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    for f in files:
        if f.suffix == ".parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(out / f), pd.read_parquet(ref / f),
                                          check_exact=True, obj=str(f))
        elif f.suffix == ".json":
            assert json.loads((out / f).read_text()) == json.loads((ref / f).read_text())
        else:
            assert (out / f).read_text() == (ref / f).read_text(), f
