"""tvadapter.errors: one root, and errors that survive pickle/copy with their fields."""

from __future__ import annotations

import copy
import pickle

import pytest

import tvadapter
from tvadapter import errors

CASES = [
    errors.HandshakeRejected("upgrade refused", status=503),
    errors.HandshakeForbidden("wrong Origin", status=403),
    errors.HandshakeRateLimited("too many connections", retry_after=2.0),
    errors.HttpStatusError("search failed", status=500, retry_after=1.0),
    errors.TvCircuitOpenError("breaker open", retry_after=3.0),
    errors.ConnectionClosed("closed", code=1006, reason="abort"),
    errors.RateLimitedError("slow down", retry_after=1.5),
    errors.SymbolNotFoundError("NASDAQ:NOPE: invalid symbol"),
    errors.DataIncompleteError("gap"),
]


@pytest.mark.parametrize("error", CASES, ids=lambda e: type(e).__name__)
def test_errors_survive_pickle_and_copy(error: errors.TvError) -> None:
    """Every error keeps its type, message, args and fields through pickle, copy and deepcopy."""
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert clone.args == error.args
        assert vars(clone) == vars(error)


def test_every_exported_error_derives_from_the_root() -> None:
    """Every class in tvadapter.errors.__all__ is a TvError, also exported at the top level."""
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.TvError), name
        assert getattr(tvadapter, name) is cls, name
