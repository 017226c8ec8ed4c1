"""Typed usage of retry/timeout, checked by mypy --strict (see test_typed_usage_file_passes_mypy).

Never executed.  `assert_type` proves the decorators keep return types; the
`type: ignore[arg-type]` lines prove they keep parameter types (with --strict an ignore that
is not needed is itself an error, so a decorator that erased the signature would fail).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from typing_extensions import assert_type

from resilience import Backoff, Deadline, exponential_backoff_retry, retry, retrying, timeout


@retry(on=ValueError, attempts=3, backoff=Backoff(jitter="equal"))
def fetch(url: str, *, tries: int = 1) -> bytes:
    return url.encode() * tries


@retry(on=lambda exc: isinstance(exc, OSError), deadline=Deadline(5.0))
async def fetch_async(url: str) -> int:
    return len(url)


@timeout(1.5)
def compute(x: int) -> str:
    return str(x)


@timeout(0.5)
async def compute_async(x: int) -> float:
    return x / 2


class Client:
    @retry(on=ConnectionError)
    def get(self, key: str) -> dict[str, int]:
        return {key: 1}

    @timeout(2.0)
    async def close(self) -> None:
        return None


assert_type(fetch("u"), bytes)
assert_type(fetch("u", tries=2), bytes)
fetch(1)  # type: ignore[arg-type]
fetch("u", tries="2")  # type: ignore[arg-type]
assert_type(compute(1), str)
compute("1")  # type: ignore[arg-type]
assert_type(Client().get("k"), dict[str, int])
Client().get(3)  # type: ignore[arg-type]
assert_type(exponential_backoff_retry(lambda: 3), int)


async def use_async() -> None:
    assert_type(await fetch_async("u"), int)
    assert_type(await compute_async(1), float)
    await compute_async("1")  # type: ignore[arg-type]
    assert_type(await Client().close(), None)
    assert_type(await exponential_backoff_retry(lambda: fetch_async("u")), int)
    coro: Coroutine[Any, Any, int] = fetch_async("u")
    wrong: Coroutine[Any, Any, str] = fetch_async("u")  # type: ignore[assignment]
    await coro
    await wrong


for attempt in retrying(on=OSError, deadline=3.0):
    with attempt:
        assert_type(attempt.remaining, float | None)
        assert_type(attempt.number, int)
