"""Generate ``shop_export.csv``: a small, made-up order export of a Chinese online tea shop.

It looks like what a shop system exports, not like the handbook's data contract: its own column
names, local time with a ``+08:00`` offset, amounts in yuan, status codes (paid, cancelled before
payment, test orders), channel codes in Chinese, and personal data (name, phone, address) that
the handbook must not need and must not show. ``dataset.yaml`` next to it maps it to the
contract; ``docs/own_data.md`` walks through it.

The file is committed; this script documents how it was made (run it again only to change it)::

    .venv/bin/python examples/own_data/make_export.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
N_BUYERS = 120
START, END = pd.Timestamp("2025-01-01"), pd.Timestamp("2025-06-30 23:59:59")
SKUS = {f"SKU-{i:03d}": round(float(p), 1) for i, p in
        enumerate([38, 45, 58, 68, 88, 98, 128, 158, 188, 238, 268, 298, 18, 25, 32, 12,
                   66, 76, 99, 139, 199, 49, 59, 79, 109], start=101)}
CHANNELS = ["小程序", "APP", "H5"]  # mini-program, app, mobile web
CITIES = ["上海", "北京", "杭州", "广州", "深圳", "成都"]
SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄"]
GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "艳"]


def make(seed: int = 2025) -> pd.DataFrame:
    """The export as a DataFrame (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    buyers = pd.DataFrame({
        "buyer": [f"U{10001 + i}" for i in range(N_BUYERS)],
        "buyer_name": [SURNAMES[i % 8] + GIVEN[(i * 3) % 8] + GIVEN[(i * 5 + 1) % 8]
                       for i in range(N_BUYERS)],
        "buyer_phone": [f"1{rng.integers(30, 90)}{rng.integers(10_000_000, 99_999_999)}"
                        for _ in range(N_BUYERS)],
        "ship_address": [f"{CITIES[i % 6]}市某区某路{rng.integers(1, 999)}号{rng.integers(1, 30)}室"
                         for i in range(N_BUYERS)],
        "city": [CITIES[i % 6] for i in range(N_BUYERS)],
        "channel": rng.choice(CHANNELS, N_BUYERS, p=[0.5, 0.3, 0.2]),
        "rate": rng.gamma(1.2, 2.0, N_BUYERS),  # paid orders in the half year
    })
    rows = []
    span = (END - START).total_seconds()
    for b in buyers.itertuples():
        n = max(1, int(rng.poisson(b.rate)))
        for _ in range(n):
            ts = START + pd.Timedelta(seconds=float(rng.uniform(0, span)))
            sku = rng.choice(list(SKUS))
            qty = int(rng.choice([1, 1, 1, 2, 2, 3]))
            status = rng.choice(["PAID", "CANCELLED", "TEST"], p=[0.93, 0.05, 0.02])
            total = round(SKUS[sku] * qty * float(rng.choice([1.0, 1.0, 0.9, 0.8])), 2)
            if status == "TEST":
                total = 0.01
            rows.append(dict(buyer=b.buyer, buyer_name=b.buyer_name, buyer_phone=b.buyer_phone,
                             ship_address=b.ship_address, city=b.city,
                             channel=b.channel if rng.random() < 0.8 else rng.choice(CHANNELS),
                             ts=ts.floor("s"), status=status, sku=sku, qty=qty, total=total))
    df = pd.DataFrame(rows).sort_values("ts", kind="stable").reset_index(drop=True)
    df.insert(0, "order_no", [f"SO{25_000_001 + i}" for i in range(len(df))])
    # cancelled before payment: no payment time
    df["paid_at"] = df["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S+08:00")
    df.loc[df["status"] == "CANCELLED", "paid_at"] = ""
    df = df.rename(columns={"total": "total_cny"})
    cols = ["order_no", "buyer", "buyer_name", "buyer_phone", "ship_address", "city", "channel",
            "paid_at", "total_cny", "status", "sku", "qty"]
    df = df[cols]
    # an export glitch: one row written twice
    return pd.concat([df, df.iloc[[40]]], ignore_index=True)


def main() -> None:
    df = make()
    df.to_csv(HERE / "shop_export.csv", index=False, encoding="utf-8")
    counts = df["status"].value_counts().to_dict()
    print(f"wrote {HERE / 'shop_export.csv'}: {len(df)} rows, {df['buyer'].nunique()} buyers, "
          f"status {counts}")


if __name__ == "__main__":
    main()
