"""Reading Parquet row group by row group (helpers.data.readers, issue 10) gives the frame a
whole-file read gives: same values, dtypes, index and column order."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers.data.config import SourceSpec
from helpers.data.readers import _read_parquet, _types_mapper


@pytest.mark.parametrize("row_group_size", [7, 100, 10_000])
@pytest.mark.parametrize("columns", [None, ["ts", "s"]])
def test_row_group_reads_equal_a_whole_file_read(tmp_path, row_group_size, columns):
    rng = np.random.default_rng(0)
    n = 250
    table = pa.table({
        "s": pa.array([None if i % 11 == 0 else f"id{i % 37}" for i in range(n)]),
        "ts": pa.array(pd.date_range("2024-01-01", periods=n, freq="h")),
        "f": pa.array(np.where(rng.random(n) < 0.1, np.nan, rng.random(n))),
        "b": pa.array([bool(i % 2) for i in range(n)]),
        "code": pa.array([["a", "b", None][i % 3] for i in range(n)]).dictionary_encode(),
    })
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=row_group_size)
    got = _read_parquet(SourceSpec(label="t", file=path), columns)
    expected = pq.read_table(path, columns=columns).to_pandas(types_mapper=_types_mapper)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got["s"].dtype == pd.StringDtype("pyarrow")
