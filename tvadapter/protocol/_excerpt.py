"""Short, secret-free excerpts of peer data for exception messages."""

from __future__ import annotations

import re

__all__ = ["EXCERPT_LIMIT", "excerpt"]

#: Excerpts never exceed this many characters (plus an ellipsis).
EXCERPT_LIMIT = 60

# How far before and after the excerpt we look for secrets, so that a token cut by the excerpt
# window is still recognised (JWTs run to about 1,000 characters).
_CONTEXT = 4096

# A JWT is three base64url parts; its header always starts with "eyJ" ('{"' encoded).
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*){0,2}")
# The argument of set_auth_token, whatever it looks like.
_AUTH = re.compile(r'"set_auth_token"\s*,\s*"p"\s*:\s*\[\s*"([^"]*)')


def _mask(match: re.Match[str]) -> str:
    """Replace the secret part of a match by asterisks of the same length."""
    whole = match.group(0)
    if match.re is _AUTH:
        secret_start = match.start(1) - match.start(0)
        return whole[:secret_start] + "*" * (len(whole) - secret_start)
    return "*" * len(whole)


def excerpt(text: str, start: int = 0, limit: int = EXCERPT_LIMIT) -> str:
    """``repr`` of up to ``limit`` characters of ``text`` from ``start``, tokens masked."""
    start = max(0, min(start, len(text)))
    lo = max(0, start - _CONTEXT)
    window = text[lo : start + limit + _CONTEXT]
    # Length-preserving masks keep the excerpt aligned with ``start``.
    window = _AUTH.sub(_mask, window)
    window = _JWT.sub(_mask, window)
    cut = window[start - lo : start - lo + limit]
    suffix = "..." if len(text) > start + limit else ""
    return repr(cut) + suffix
