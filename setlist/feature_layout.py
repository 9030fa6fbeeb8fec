"""A model's ranker inputs laid out over the input blocks (``BLOCKS``): serving and training build
each candidate's input row with it.

Pure Python at import, like ``setlist.featureset``; NumPy is imported where a layout is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from setlist.featureset import BLOCKS, DeclarationError, FeatureSet


class Layout:
    """Where each of a model's inputs comes from: a block (``BLOCKS``) and a column of that block's
    array. Serving fills block arrays with every declared input once per request and each model
    takes its own columns, so models on different feature services share one read."""

    def __init__(self, names: Sequence[str], columns: dict[str, Sequence[str]]) -> None:
        import numpy as np

        self.names = tuple(names)
        self.columns = {b: tuple(columns.get(b, ())) for b in BLOCKS}
        where = {n: (b, k) for b in BLOCKS for k, n in enumerate(self.columns[b])}
        missing = [n for n in self.names if n not in where]
        if missing:
            raise DeclarationError(f"inputs not among the declared features: {', '.join(missing[:5])}")
        self._parts = []
        for b in BLOCKS:
            pos = [i for i, n in enumerate(self.names) if where[n][0] == b]
            if pos:
                self._parts.append(
                    (b, np.array(pos, dtype=np.intp), np.array([where[self.names[i]][1] for i in pos], dtype=np.intp))
                )

    @classmethod
    def of(cls, names: Sequence[str], features: FeatureSet) -> Layout:
        """For block arrays holding every declared input (serving)."""
        return cls(names, {b: features.inputs(b) for b in BLOCKS})

    def block_names(self, block: str) -> tuple[str, ...]:
        """The inputs this model reads from one block, in block order."""
        return tuple(n for n in self.columns[block] if n in set(self.names))

    def assemble(self, user: Any, session: Any, request: Any, item: Any, cross: Any) -> Any:
        """The (n_candidates × inputs) float32 matrix. ``user``, ``session`` and ``request`` are
        one row each, broadcast to every candidate; ``item`` and ``cross`` have a row per candidate."""
        import numpy as np

        n = item.shape[0]
        out = np.empty((n, len(self.names)), dtype=np.float32)
        arrays = {"user": user, "session": session, "request": request, "item": item, "user_item": cross}
        for b, pos, cols in self._parts:
            a = np.asarray(arrays[b], dtype=np.float32)
            out[:, pos] = a[cols] if a.ndim == 1 else a[:, cols]
        return out
