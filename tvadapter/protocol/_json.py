"""JSON helpers shared by the builders and the parser (compact output, typed errors)."""

from __future__ import annotations

import json
from typing import Any

from tvadapter.errors import MalformedPayloadError

from ._excerpt import excerpt

__all__ = ["dumps", "loads", "malformed"]

_CLIENT_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False)
_SERVER_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(obj: Any, *, ensure_ascii: bool = True) -> str:
    """Compact JSON. ``ensure_ascii=True`` for client sends, ``False`` for raw-UTF-8 server sends.

    NaN and infinities are refused (ValueError): they are not JSON.
    """
    return (_CLIENT_ENCODER if ensure_ascii else _SERVER_ENCODER).encode(obj)


def malformed(reason: str, payload: str) -> MalformedPayloadError:
    """A :class:`MalformedPayloadError` naming ``reason`` with a short, masked excerpt."""
    return MalformedPayloadError(f"{reason}: {excerpt(payload)}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Python's json module accepts NaN, Infinity and -Infinity; JSON (and the server) does not.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads(payload: str) -> Any:
    """Parse ``payload`` as JSON, raising :class:`MalformedPayloadError` when it is not JSON.

    Long float literals (``8004.8000000000001819``), exponents (``1e+100``) and float-typed
    integers (``1685633880.0``) all parse as Python floats. ``NaN`` and ``Infinity`` are refused:
    they are not JSON.
    """
    try:
        return _DECODER.decode(payload)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise malformed("payload is not valid JSON", payload) from exc
