"""Structured logs for serving: one JSON object per line.

Fields travel in ``extra={"fields": {...}}`` so call sites name them explicitly. What never goes into
a field: user ids (raw or pseudonymized) and tokens; the request id is what ties a log line to a call.
With tracing on (setlist.tracing), a line logged inside a span also carries ``trace_id`` and ``span_id``.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from setlist.tracing import current_ids

ACCESS_LOG = "setlist.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        ids = current_ids()  # None when tracing is off or no span is current
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(level: int = logging.INFO) -> None:
    """Send JSON lines to stderr, unless the application already configured logging."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
