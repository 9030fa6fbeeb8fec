"""The cluster profile's Spark session, configured from settings, shared by the feature builder and
training. Imported only on the Spark path: the other profiles never need pyspark or Java."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from typing import Any

from setlist.errors import SetlistError
from setlist.settings import Settings

JAVA_HINT = "install a Java runtime (Debian: apt-get install -y default-jre-headless) or set JAVA_HOME"


class SparkUnavailable(SetlistError):
    """pyspark or a Java runtime is missing: the cluster profile cannot run."""


def java_missing() -> str | None:
    """Why Spark cannot start here, or None when a Java runtime is on hand."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return None
    if shutil.which("java"):
        return None
    return f"no Java runtime: {JAVA_HINT}"


def conf(settings: Settings, app: str) -> dict[str, str]:
    """The Spark configuration every Setlist job uses (also handed to Feast's Spark stores)."""
    return {
        "spark.master": settings.spark_master,
        "spark.app.name": app,
        # timestamps are instants; a session in the machine's zone would shift day boundaries
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
        "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
        # Python workers run the same interpreter (and packages) as the driver
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        **settings.spark_conf,
    }


def session(settings: Settings, app: str = "setlist") -> Any:
    """The active Spark session, or a new one from settings."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - pyspark is in the lock
        raise SparkUnavailable(f"pyspark is not installed ({exc}): run `make setup`") from exc
    why = java_missing()
    if why:
        raise SparkUnavailable(f"the {settings.profile} profile runs Spark, and there is {why}")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder
    for k, v in conf(settings, app).items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    # xgboost.spark logs every fit's full parameter dump at INFO unless its logger has a level
    logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
    return spark
