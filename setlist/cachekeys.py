"""How the shared prediction cache names a user: by a digest of the pseudonym, never the pseudonym.

Serving's Redis cache and erasure both need the name (erasure bumps the user's version on every
replica at once); a digest keeps the store free of identifiers once a user is erased, while entries
written before wait for their TTL.
"""

from __future__ import annotations

import hashlib

PREFIX = "setlist:rank:"


def user_token(pseudonym: str) -> str:
    return hashlib.blake2b(pseudonym.encode(), digest_size=16, person=b"setlist-cache").hexdigest()


def user_version_key(pseudonym: str) -> str:
    """The key of a user's cache version (bumping it makes every entry of theirs stale)."""
    return f"{PREFIX}u:{user_token(pseudonym)}"


def entry_key(key: str) -> str:
    return f"{PREFIX}e:{key}"
