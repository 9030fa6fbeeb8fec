"""Settings as a process whose environment holds exactly some variables would read them: through the
settings object's own environment source, so aliases (SETLIST_WAL_DIR) and JSON values
(SETLIST_SPARK_CONF) read as in a pod, where keyword arguments would skip both."""

from __future__ import annotations

import os
from collections.abc import Mapping
from unittest import mock

from setlist.settings import Settings


def settings_from_environment(variables: Mapping[str, str]) -> Settings:
    with mock.patch.dict(os.environ, dict(variables), clear=True):
        return Settings()
