"""Bearer-token auth for the ranking service: ``authorization: Bearer <token>`` metadata.

``settings.auth_tokens`` is ``"token1:read,token2:write,token3:read+write"``. Rank needs ``read`` and
Track needs ``write``. Health and reflection are never guarded (load balancers and grpcurl have no
token). Tokens are compared in constant time and never appear in messages or logs.

A caller is known by its token's fingerprint (``fingerprint``): the first 16 hex digits of the token's
SHA-256. Quotas key their buckets by it, and the per-token quota file names tokens by it, so neither
holds a secret and neither depends on the order of the token list (which replicas may not share).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from serving.errors import PermissionDenied, Unauthenticated
from setlist.settings import Settings

READ, WRITE = "read", "write"
SCOPES = frozenset({READ, WRITE})
RPC_SCOPES = {"Rank": READ, "Track": WRITE}
FINGERPRINT_HEX = 16


def fingerprint(token: bytes | str) -> str:
    """A token's public name: 64 bits of its SHA-256, enough to tell tokens apart, never the secret."""
    raw = token.encode() if isinstance(token, str) else token
    return hashlib.sha256(raw).hexdigest()[:FINGERPRINT_HEX]


def parse_tokens(spec: str) -> list[tuple[bytes, frozenset[str]]]:
    """Parse the token list. Errors name the entry's position, never its text (it holds a secret)."""
    tokens: list[tuple[bytes, frozenset[str]]] = []
    for position, entry in enumerate((e.strip() for e in spec.split(",")), start=1):
        if not entry:
            continue
        token, sep, scope_text = entry.rpartition(":")  # rpartition: a token may itself contain ':'
        scopes = frozenset(s.strip() for s in scope_text.split("+"))
        if not sep or not token or not scopes <= SCOPES:
            raise ValueError(f"auth_tokens entry {position} must look like TOKEN:read, TOKEN:write or TOKEN:read+write")
        tokens.append((token.encode(), scopes))
    if not tokens:
        raise ValueError("auth_tokens is set but holds no TOKEN:scope entries")
    return tokens


class TokenAuth:
    def __init__(self, spec: str) -> None:
        self._tokens = parse_tokens(spec)
        self._fingerprints = [fingerprint(token) for token, _ in self._tokens]

    def fingerprints(self) -> list[tuple[str, frozenset[str]]]:
        """Each entry's fingerprint and scopes, in the list's order."""
        return [(fp, scopes) for fp, (_, scopes) in zip(self._fingerprints, self._tokens, strict=True)]

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenAuth | None:
        """None when auth is off (no tokens configured)."""
        if settings.auth_tokens is None or not settings.auth_tokens.get_secret_value().strip():
            return None
        return cls(settings.auth_tokens.get_secret_value())

    def _match(self, presented: bytes) -> tuple[str, frozenset[str]] | None:
        """The matching entry's fingerprint and scopes."""
        found = None
        for (token, scopes), fp in zip(self._tokens, self._fingerprints, strict=True):
            if hmac.compare_digest(token, presented):  # no early exit: timing does not reveal the entry
                found = (fp, scopes)
        return found

    def check(self, rpc: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
        """Raise Unauthenticated or PermissionDenied unless the call's token may call ``rpc``; else
        return the caller's identity, for quotas: its token's fingerprint, never the secret itself."""
        header = next((v for k, v in metadata or () if k == "authorization"), None)
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        scheme, _, presented = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthenticated("missing bearer token: send metadata 'authorization: Bearer <token>'")
        match = self._match(presented.strip().encode())
        if match is None:
            raise Unauthenticated("unknown bearer token")
        caller, scopes = match
        needed = RPC_SCOPES.get(rpc)
        if needed is None or needed not in scopes:
            raise PermissionDenied(
                f"{rpc} needs the '{needed or 'admin'}' scope; this token has: {'+'.join(sorted(scopes))}"
            )
        return caller
