"""The Spark session the cluster profile's tests share: ``spark_session``, once per test session.

Registered in tests/conftest.py; a test module may also import it (``from tests.spark_fixtures import
spark_session``). Without a Java runtime the tests that use it skip with the command that installs
one; with SETLIST_REQUIRE_SERVERS=1 (as CI sets) they fail instead, as a missing server does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import skip_or_fail

#: two local cores and few shuffle partitions: the fixtures are small, and CI has two cores
SPARK_MASTER = "local[2]"
SHUFFLE_PARTITIONS = 4


def spark_settings(data_dir: Path, **over: Any) -> Any:
    """Cluster-profile settings with the shared session's Spark configuration (so that code calling
    ``setlist.spark.session(settings)`` gets the same session back, not a reconfigured one)."""
    from pydantic import SecretStr

    from setlist.settings import Settings

    return Settings(
        profile="cluster",
        data_dir=data_dir,
        spark_master=SPARK_MASTER,
        spark_shuffle_partitions=SHUFFLE_PARTITIONS,
        hmac_key=SecretStr("test-hmac-key"),
        **over,
    )


@pytest.fixture(scope="session")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A SparkSession made by ``setlist.spark.session`` (local[2], 4 shuffle partitions), stopped at
    the end of the test session."""
    from setlist.spark import java_missing, session

    why = java_missing()
    if why:
        skip_or_fail(f"Spark tests need Java: {why}")
    spark = session(spark_settings(tmp_path_factory.mktemp("spark")), "setlist-tests")
    try:
        yield spark
    finally:
        spark.stop()
