"""Where feature declarations are found: the built-in pack, every other module in this package,
and every ``*.py`` file in the directories of ``SETLIST_FEATURE_DIRS``.

A module declares ``FEATURES`` (a list of ``setlist.featureset.Feature``) and may declare
``TABLES`` (``Table`` sources). Adding a feature is one new file; nothing else changes.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from setlist.feature_sources import Table
from setlist.featureset import DeclarationError, Feature, FeatureSet
from setlist.settings import Settings, get_settings

PACKAGE_DIR = Path(__file__).resolve().parent


def load(settings: Settings | None = None) -> FeatureSet:
    settings = settings or get_settings()
    return _load(tuple(str(Path(d).resolve()) for d in settings.feature_dirs))


def modules(dirs: tuple[str, ...] = ()) -> list[tuple[str, ModuleType]]:
    """(where, module) for the built-in pack first, then the package's other modules, then files."""
    found = [("built-in", importlib.import_module(f"{__name__}.builtin"))]
    for info in sorted(pkgutil.iter_modules([str(PACKAGE_DIR)]), key=lambda i: i.name):
        if info.name != "builtin" and not info.name.startswith("_"):
            where = f"feature_repo/declarations/{info.name}.py"
            try:
                found.append((where, importlib.import_module(f"{__name__}.{info.name}")))
            except Exception as exc:  # a user's file: say which one, in one line
                raise DeclarationError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise DeclarationError(f"SETLIST_FEATURE_DIRS names {root}, which is not a directory")
        for path in sorted(root.glob("*.py")):
            if path.name.startswith("_"):
                continue
            spec = importlib.util.spec_from_file_location(f"setlist_declared_{path.stem}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as exc:  # a user's file: say which one, in one line
                raise DeclarationError(f"{path} failed to load: {type(exc).__name__}: {exc}") from exc
            found.append((str(path), module))
    return found


@lru_cache(maxsize=8)
def _load(dirs: tuple[str, ...]) -> FeatureSet:
    features: dict[str, Feature] = {}
    origin: dict[str, str] = {}
    tables: list[Table] = []
    for where, module in modules(dirs):
        declared = getattr(module, "FEATURES", None)
        if declared is None:
            raise DeclarationError(f"{where} declares no FEATURES list")
        for f in declared:
            if not isinstance(f, Feature):
                raise DeclarationError(f"{where}: FEATURES holds {type(f).__name__}, not Feature")
            if f.name in features and origin[f.name] == where:
                raise DeclarationError(f"feature {f.name!r} is declared twice in {where}")
            if f.name in features and origin[f.name] != "built-in":
                raise DeclarationError(f"feature {f.name!r} is declared in both {origin[f.name]} and {where}")
            features[f.name] = f  # a later module's declaration replaces a built-in one
            origin[f.name] = where
        tables.extend(getattr(module, "TABLES", []))
    return FeatureSet.of(list(features.values()), tables, origin)
