"""The cost file: a price per unit of each measured resource (``cost.yaml`` at the repository root).

A missing, unreadable or malformed file, an unknown or missing price, or a negative one is a one-line
``SetlistError`` (exit 2), never a traceback and never a default price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from setlist.errors import BadInput, InputMissing
from setlist.yamlfile import read_yaml

#: every price the file must give, in the file's ``prices`` mapping
FIELDS = ("cpu_second", "storage_gb_month", "redis_gb_hour", "million_requests")


@dataclass(frozen=True)
class Prices:
    currency: str
    cpu_second: float  # one CPU-second
    storage_gb_month: float  # one GB (2^30 bytes) of files kept for one month
    redis_gb_hour: float  # one GB of Redis memory for one hour
    million_requests: float  # one million Rank or Track calls


def load(path: Path) -> Prices:
    if not path.is_file():
        raise InputMissing(
            f"no cost file at {path} (SETLIST_COST_FILE); cost.yaml at the repository root is a template"
        )
    doc = read_yaml(path, "cost file")
    prices = doc.get("prices") if isinstance(doc, dict) else None
    if not isinstance(prices, dict):
        raise BadInput(f"{path}: needs a `prices` mapping with {', '.join(FIELDS)}")
    unknown = sorted(str(k) for k in prices if k not in FIELDS)
    if unknown:
        raise BadInput(f"{path}: unknown price {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    missing = [f for f in FIELDS if f not in prices]
    if missing:
        raise BadInput(f"{path}: no price for {', '.join(missing)}")
    values = {name: _price(path, name, prices[name]) for name in FIELDS}
    currency = doc.get("currency", "USD")
    if not isinstance(currency, str) or not currency.strip():
        raise BadInput(f"{path}: `currency` must be a short label such as USD, got {currency!r}")
    return Prices(currency=currency.strip(), **values)


def _price(path: Path, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInput(f"{path}: prices.{name} must be a number, got {value!r}")
    if value < 0:
        raise BadInput(f"{path}: prices.{name} is {value}; a price is 0 or more")
    return float(value)
