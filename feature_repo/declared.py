"""The feature declarations and the registered tables they read, loaded once per publish."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pandas as pd

from feature_repo import declarations
from setlist.featureset import FeatureSet
from setlist.pseudonym import app_id, check_key, pseudonymize
from setlist.settings import Settings


@dataclass(frozen=True)
class Declared:
    """The feature declarations and the registered tables they read, loaded once per publish."""

    features: FeatureSet
    user_tables: dict[str, pd.DataFrame]
    item_tables: dict[str, pd.DataFrame]
    consent_default: bool = True  # settings.consent_granted_by_default: changing it rebuilds everything
    #: the key stored search terms were hashed with, so that offline sessions read them as Track does
    term_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def load(cls, settings: Settings) -> Declared:
        from feature_repo.engine import load_tables

        fs = declarations.load(settings)
        check_key(settings)  # SQL user tables and hashed search terms would match no one's events
        key = settings.secret_hmac_key()
        return cls(
            fs,
            load_tables(fs, "user", lambda u: pseudonymize(app_id(str(u)), key)),  # as the events' ids are
            load_tables(fs, "item"),
            settings.consent_granted_by_default,
            key,
        )

    def fingerprint(self) -> str:
        """Changes when a declaration or a registered table's content changes: a full rebuild."""
        h = hashlib.sha256(self.features.fingerprint().encode())
        h.update(b"consent-default:grant" if self.consent_default else b"consent-default:deny")
        for name, frame in sorted({**self.user_tables, **self.item_tables}.items()):
            h.update(name.encode())
            h.update(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes())
        return h.hexdigest()[:16]
