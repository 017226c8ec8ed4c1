"""Tests of RedisConnection.prepare/run: the Redis backends' hot path (own idle connections,
commands encoded once) keeps redis-py's behaviour on the edges."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from resilience import BackendUnavailable
from resilience._redis_common import LuaScript, RedisConnection
from resilience.redis import RedisBucketBackend

pytest.importorskip("redis")

ECHO = LuaScript("return {KEYS[1], ARGV[1], ARGV[2]}")


@pytest.fixture
def connection(redis_url: str) -> Iterator[RedisConnection]:
    conn = RedisConnection(redis_url)
    try:
        yield conn
    finally:
        conn.close()


def test_prepared_call_sends_keys_and_arguments_as_redis_py_would(
    connection: RedisConnection,
) -> None:
    """Strings (UTF-8), ints and floats arrive as redis-py would encode them."""
    call = connection.prepare(ECHO, ("clé",), (7, 0.1))
    assert connection.run(call) == ["clé".encode(), b"7", b"0.1"]
    assert connection.eval_script(ECHO, ("k",), ("x", 1.5)) == [b"k", b"x", b"1.5"]


def test_prepared_call_rejects_a_bool_argument(connection: RedisConnection) -> None:
    """A bool is not silently sent as a number (redis-py refuses it too)."""
    with pytest.raises(TypeError, match="argument"):
        connection.prepare(ECHO, ("k",), (True, 1))


def test_interrupted_call_never_leaves_a_stale_reply(
    connection: RedisConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception between sending and reading (e.g. an injected timeout) disconnects the
    connection: the next call gets its own reply, not the previous one."""
    first = connection.prepare(ECHO, ("k",), ("first", 1))
    second = connection.prepare(ECHO, ("k",), ("second", 2))
    assert connection.run(first)[1] == b"first"
    conn = connection._default_idle[0]
    original = type(conn).read_response

    def interrupted(self: Any, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(type(conn), "read_response", original)
        raise KeyboardInterrupt

    monkeypatch.setattr(type(conn), "read_response", interrupted)
    with pytest.raises(KeyboardInterrupt):
        connection.run(first)
    assert connection.run(second)[1] == b"second"


def test_script_error_keeps_the_connection_usable(connection: RedisConnection) -> None:
    """A script raising an error becomes BackendUnavailable; the same socket then serves the
    next call (the error reply was read in full) and Redis is not marked down."""
    failing = LuaScript("return redis.error_reply('boom')")
    with pytest.raises(BackendUnavailable, match="refused"):
        connection.eval_script(failing, ("k",), ())
    assert connection.available
    assert connection.eval_script(ECHO, ("k",), ("ok", 1))[1] == b"ok"


def test_threads_get_connections_of_their_own(connection: RedisConnection) -> None:
    """Concurrent callers never share a socket: each reply matches its own call."""
    errors: list[str] = []
    barrier = threading.Barrier(8)

    def worker(number: int) -> None:
        call = connection.prepare(ECHO, ("k",), (f"t{number}", number))
        barrier.wait()
        for _ in range(200):
            reply = connection.run(call)
            if reply[1:] != [f"t{number}".encode(), str(number).encode()]:
                errors.append(repr(reply))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert 1 <= len(connection._default_idle) <= 8


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_opens_its_own_connection(redis_url: str) -> None:
    """A child forked after the parent used the backend decides over its own socket, and the
    parent's connection still works afterwards."""
    backend = RedisBucketBackend(redis_url, on_unavailable="closed")
    name = uuid.uuid4().hex
    try:
        assert backend.decide(name, 1000.0, 1000.0, 1.0) == 0.0
        parent_conn = backend.connection._default_idle[0]
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            ok = backend.decide(name, 1000.0, 1000.0, 1.0) == 0.0
            ok = ok and backend.connection._default_idle[0] is not parent_conn
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert backend.decide(name, 1000.0, 1000.0, 1.0) == 0.0
        assert backend.connection._default_idle[0] is parent_conn
    finally:
        backend.close()
