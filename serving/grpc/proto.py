"""The generated gRPC modules, imported on first use.

``from serving.grpc.proto import ranking_pb2, ranking_pb2_grpc`` works like a normal import, but the import
happens lazily (PEP 562), so modules that only *mention* the protos can be imported before
``make protos`` ran (the test session generates them in a fixture) and a missing generation fails with
an instruction instead of a bare ModuleNotFoundError.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING

SERVICE_NAME = "setlist.v1.RankingService"
_MODULES = {
    "ranking_pb2": "serving.grpc._proto.setlist.v1.ranking_pb2",
    "ranking_pb2_grpc": "serving.grpc._proto.setlist.v1.ranking_pb2_grpc",
}

if TYPE_CHECKING:  # type checkers see the real modules (with the generated .pyi stubs)
    from serving.grpc._proto.setlist.v1 import ranking_pb2, ranking_pb2_grpc  # noqa: F401


def __getattr__(name: str) -> ModuleType:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = import_module(_MODULES[name])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("serving.grpc._proto"):
            raise ImportError(
                "the generated gRPC code is missing: run `make protos` (python -m scripts.protogen)"
            ) from exc
        raise
    globals()[name] = module  # later lookups are plain attribute reads
    return module
