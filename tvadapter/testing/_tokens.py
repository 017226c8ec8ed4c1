"""JWT-shaped auth tokens as the fake server issues and checks them.

The real server issues RS512-signed JWTs (PROTOCOL.md §16.3). The fake one issues tokens of the
same shape -- three base64url parts, a header ``{"alg":"RS512","kid":"GZxU","typ":"JWT"}``, the
claims below, and a signature part that is not a real signature -- so a client can decode ``exp``
exactly as it would with the real thing. The fake never verifies signatures.

Claims: ``user_id, exp, iat, plan, prostatus, ext_hours, perm, study_perm, max_studies,
max_fundamentals, max_charts, max_active_alerts, max_study_on_study, max_overall_alerts,
max_connections`` (plus anything passed in ``extra``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PLAN_LIMITS", "TokenClaims", "make_token", "parse_token"]

#: Per-plan limits: (max_connections, max_studies, max_charts).
PLAN_LIMITS: Mapping[str, tuple[int, int, int]] = {
    "": (2, 2, 1),
    "pro": (10, 5, 2),
    "pro_plus": (20, 10, 4),
    "pro_premium": (50, 25, 8),
    "ultimate": (200, 50, 16),
}

_HEADER = {"alg": "RS512", "kid": "GZxU", "typ": "JWT"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenClaims:
    """The claims the fake server reads from a token. Immutable and thread-safe."""

    user_id: int
    exp: float
    iat: float
    plan: str
    max_connections: int
    raw: Mapping[str, Any]


def make_token(
    *,
    user_id: int,
    iat: float,
    lifetime: float = 14_400.0,
    plan: str = "",
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A JWT-shaped token for ``user_id``, issued at ``iat`` (epoch s), valid ``lifetime`` s."""
    connections, studies, charts = PLAN_LIMITS.get(plan, PLAN_LIMITS[""])
    claims: dict[str, Any] = {
        "user_id": user_id,
        "exp": int(iat + lifetime),
        "iat": int(iat),
        "plan": plan,
        "prostatus": "non_pro" if plan == "" else "pro",
        "ext_hours": 1,
        "perm": "",
        "study_perm": "tv-basicstudies",
        "max_studies": studies,
        "max_fundamentals": 10 if plan else 1,
        "max_charts": charts,
        "max_active_alerts": 20 if plan else 1,
        "max_study_on_study": 9 if plan else 1,
        "fields_permissions": ["refbonds"],
        "max_overall_alerts": 2000,
        "max_active_primitive_alerts": 20 if plan else 1,
        "max_active_complex_alerts": 20 if plan else 1,
        "max_connections": connections,
    }
    if extra:
        claims.update(extra)
    header = _b64(json.dumps(_HEADER, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    # Not a signature: 512 bits derived from the content, so the part looks the part.
    signature = _b64(hashlib.sha512(f"{header}.{body}".encode()).digest())
    return f"{header}.{body}.{signature}"


def parse_token(token: str) -> TokenClaims | None:
    """The claims of a JWT-shaped ``token``; ``None`` when it is malformed."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    exp, iat = claims.get("exp"), claims.get("iat", 0)
    if not isinstance(exp, (int, float)) or not isinstance(iat, (int, float)):
        return None
    user_id = claims.get("user_id", 0)
    plan = claims.get("plan", "")
    max_connections = claims.get("max_connections", 2)
    return TokenClaims(
        user_id=int(user_id) if isinstance(user_id, int) else 0,
        exp=float(exp),
        iat=float(iat),
        plan=plan if isinstance(plan, str) else "",
        max_connections=int(max_connections) if isinstance(max_connections, int) else 2,
        raw=claims,
    )
