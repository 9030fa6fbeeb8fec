"""Feature files are written with typed list columns, even when every list is empty."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from feature_repo import declarations
from feature_repo.gate import feature_table


def test_empty_list_columns_get_their_declared_element_type() -> None:
    features = declarations.load()
    floats = next(f.name for f in features.view("user_profile") if f.dtype == "float_list")
    frame = pd.DataFrame(
        {floats: [[], []], "session_blocked_items": [[], []], "session_last_items": [["a"], []], "n": [1, 2]}
    )
    assert pa.types.is_null(pa.Table.from_pandas(frame).schema.field(floats).type.value_type)  # what pandas gives
    schema = feature_table(frame, features).schema
    assert schema.field(floats).type == pa.list_(pa.float32())
    assert schema.field("session_blocked_items").type == pa.list_(pa.string())
    assert schema.field("session_last_items").type == pa.list_(pa.string())  # already typed: left as it is
    assert schema.field("n").type == pa.int64()
    assert feature_table(frame).schema.field(floats).type == pa.list_(pa.string())  # undeclared: strings
