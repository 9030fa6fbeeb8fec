"""How the shared prediction cache names a user: by a digest of the pseudonym, never the pseudonym.

Serving's Redis cache and erasure both need the name (erasure bumps the user's version on every
replica at once); a digest keeps the store free of identifiers once a user is erased, while entries
written before wait for their TTL.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from setlist.settings import Settings

log = logging.getLogger("setlist.cache")


def rank_prefix(namespace: str) -> str:
    """Where a deployment's cache keys live: under its Feast project's name (``SETLIST_FEAST_PROJECT``), as
    its online rows do, so two deployments sharing one Redis database keep apart."""
    return f"{namespace}:rank:"


def generation_key(namespace: str) -> str:
    """Bumping it makes every cached ranking stale: a model swap, or a feature publish (the users' rows changed)."""
    return f"{rank_prefix(namespace)}generation"


def user_token(pseudonym: str) -> str:
    return hashlib.blake2b(pseudonym.encode(), digest_size=16, person=b"setlist-cache").hexdigest()


def user_version_key(pseudonym: str, namespace: str) -> str:
    """The key of a user's cache version (bumping it makes every entry of theirs stale)."""
    return f"{rank_prefix(namespace)}u:{user_token(pseudonym)}"


def entry_key(key: str, namespace: str) -> str:
    return f"{rank_prefix(namespace)}e:{key}"


def new_token() -> str:
    """A new version: random, not a counter. A counter key that expired would count again from 1,
    and an entry stamped 1 before it expired would then be served as fresh."""
    return os.urandom(8).hex()


def shared_cache(settings: Settings) -> Any | None:
    """A client of the shared prediction cache (Redis), or None when servers cache in process."""
    if settings.cache_store != "redis":
        return None
    from setlist.redis_client import fail_fast_redis

    return fail_fast_redis(settings.redis_url, max(settings.online_timeout_ms, 500) / 1000, retries=1)


def bump_shared_generation(settings: Settings) -> bool:
    """Make every cached ranking stale now, after a feature publish changed users' rows: a server
    looks a hit up before reading the rows (serving.service), so the publish must say so itself.
    False when there is no shared cache or it did not answer: servers bump their generation when
    they pick the publish up (within SETLIST_RELOAD_INTERVAL_S), and entries expire by TTL."""
    client = shared_cache(settings)
    if client is None:
        return False
    try:
        client.set(generation_key(settings.feast_project), new_token())
        return True
    except Exception as exc:  # the publish stands; the servers' own bump follows
        log.warning("could not invalidate the shared prediction cache: %s", type(exc).__name__)
        return False
    finally:
        client.close()
