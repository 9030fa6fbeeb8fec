"""The MLflow pyfunc wrapper of the candidate index, so ``setlist-candidates`` is a normal
registered model: ``predict`` on a frame of users returns their candidate lists."""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from setlist.candidate_sources import cohort_key
from setlist.candidates import CandidateIndex

INDEX_ARTIFACT = "index"


class CandidateModel(PythonModel):
    def load_context(self, context: Any) -> None:
        self.index = CandidateIndex.load(context.artifacts[INDEX_ARTIFACT])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        n = int((params or {}).get("n", 500))
        out = []
        for row in model_input.itertuples(index=False):
            c = self.index.generate(row.user_id, [], cohort_key(row.locale, row.device), set(), n)
            out.append(list(self.index.item_ids[c.idx]))
        return pd.DataFrame({"user_id": model_input["user_id"], "candidates": out})
