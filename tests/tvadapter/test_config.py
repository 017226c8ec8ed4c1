"""Tests for tvadapter.config.NetworkConfig: defaults, validation, Origin folding, from_env."""

from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvadapter import ConfigurationError, NetworkConfig
from tvadapter.config import DEFAULT_WS_URL, ENV_VARIABLES


def test_defaults_point_at_tradingview() -> None:
    """The defaults are the real endpoints, the design's timeouts and the one safe Origin."""
    c = NetworkConfig()
    assert c.ws_url == DEFAULT_WS_URL
    assert c.ws_url.startswith("wss://data.tradingview.com/socket.io/websocket")
    assert "type=chart" in c.ws_url
    assert c.origin == "https://www.tradingview.com"
    assert c.search_url == "https://symbol-search.tradingview.com/symbol_search/v3/"
    assert c.signin_url == "https://www.tradingview.com/accounts/signin/"
    assert c.home_url == "https://www.tradingview.com/"
    assert (c.connect_timeout, c.send_timeout, c.recv_timeout) == (10.0, 5.0, 30.0)
    assert (c.max_retries, c.base_retry_delay, c.max_retry_delay) == (3, 2.0, 60.0)
    assert c.reuse_connections is True
    assert c.max_connection_age == 300.0
    assert c.redis_url is None
    # Safe for TradingView: no more than one request every 6 s sustained (PROTOCOL.md §18).
    assert c.requests_per_minute <= 10
    assert c.burst_size == 10


def test_frozen_and_hashable() -> None:
    """The config cannot be mutated, equal configs hash equal, and headers are read-only."""
    a = NetworkConfig(ws_headers={"X-A": "1"})
    b = NetworkConfig(ws_headers=[("X-A", "1")])
    assert a == b
    assert hash(a) == hash(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.connect_timeout = 1.0  # type: ignore[misc]
    assert isinstance(a.ws_headers, MappingProxyType)
    with pytest.raises(TypeError):
        a.ws_headers["X-B"] = "2"  # type: ignore[index]


def test_headers_are_copied_not_aliased() -> None:
    """Mutating the dict passed in does not change the config."""
    source = {"X-A": "1"}
    c = NetworkConfig(ws_headers=source)
    source["X-A"] = "2"
    assert c.ws_headers["X-A"] == "1"


@pytest.mark.parametrize("key", ["Origin", "origin", "ORIGIN"])
def test_origin_header_is_folded_into_origin(key: str) -> None:
    """An Origin entry in ws_headers becomes `origin` and leaves the headers (never sent twice)."""
    c = NetworkConfig(ws_headers={key: "https://www.tradingview.com", "X-A": "1"})
    assert c.origin == "https://www.tradingview.com"
    assert [k.lower() for k in c.ws_headers] == ["x-a"]
    assert not any(line.lower().startswith("origin:") for line in c.handshake_headers())


def test_legacy_origin_header_wins_over_default() -> None:
    """A tvDatafeed-style {"Origin": ...} header is honoured (folded), not silently dropped."""
    c = NetworkConfig(ws_headers={"Origin": "https://data.tradingview.com"})
    assert c.origin == "https://data.tradingview.com"
    assert dict(c.ws_headers) == {}


def test_handshake_headers_user_agent() -> None:
    """User-Agent comes from user_agent unless ws_headers sets one; None sends none."""
    assert any(h.startswith("User-Agent: Mozilla/5.0") for h in NetworkConfig().handshake_headers())
    own = NetworkConfig(ws_headers={"user-agent": "me/1"}).handshake_headers()
    assert own == ["user-agent: me/1"]
    assert NetworkConfig(user_agent=None).handshake_headers() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ws_url", "https://data.tradingview.com/socket.io/websocket"),
        ("ws_url", "data.tradingview.com"),
        ("ws_url", "wss://"),
        ("ws_url", "wss://host/a b"),
        ("ws_url", 5),
        ("origin", "wss://www.tradingview.com"),
        ("origin", "https://www.tradingview.com/chart/"),
        ("search_url", "ftp://x/"),
        ("signin_url", "not a url"),
        ("home_url", ""),
        ("totp_url", "ws://x/"),
        ("redis_url", "http://127.0.0.1:6379"),
        ("connect_timeout", 0),
        ("connect_timeout", -1.0),
        ("send_timeout", math.nan),
        ("recv_timeout", math.inf),
        ("recv_timeout", "30"),
        ("recv_timeout", True),
        ("progress_timeout", 0.0),
        ("ping_timeout", -0.1),
        ("request_deadline", 0),
        ("request_deadline", math.inf),
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("max_retries", True),
        ("base_retry_delay", -1),
        ("max_retry_delay", math.nan),
        ("requests_per_minute", 0),
        ("burst_size", 0),
        ("burst_size", 2.0),
        ("reuse_connections", 1),
        ("max_connection_age", 0),
        ("max_connection_age", math.nan),
        ("health_check_after", -1),
        ("user_agent", ""),
        ("ws_headers", "Origin: x"),
        ("ws_headers", {"Host": "evil"}),
        ("ws_headers", {"Sec-WebSocket-Key": "abc"}),
        ("ws_headers", {"Bad Name": "v"}),
        ("ws_headers", {"X-A": "v\r\nInjected: 1"}),
        ("ws_headers", [("X-A", "1"), ("x-a", "2")]),
        ("ws_headers", {"Origin": "not-an-origin"}),
    ],
)
def test_bad_values_name_the_field(field: str, value: Any) -> None:
    """Every invalid value raises ConfigurationError (a ValueError) naming the field."""
    with pytest.raises(ConfigurationError) as info:
        NetworkConfig(**{field: value})
    assert isinstance(info.value, ValueError)
    assert field in str(info.value)


def test_retry_delays_must_be_ordered() -> None:
    """max_retry_delay below base_retry_delay is refused, naming both fields."""
    with pytest.raises(ConfigurationError, match=r"max_retry_delay.*base_retry_delay"):
        NetworkConfig(base_retry_delay=5.0, max_retry_delay=1.0)


def test_retry_backoff_doubles_from_base_up_to_max() -> None:
    """retry_backoff grows base_retry_delay x2 and never exceeds max_retry_delay."""
    config = NetworkConfig(base_retry_delay=0.5, max_retry_delay=3.0)
    backoff = config.retry_backoff("none")
    assert [backoff.compute(attempt) for attempt in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert config.retry_backoff().jitter == "full"
    assert config.retry_backoff("equal").jitter == "equal"


def test_accepted_edge_values() -> None:
    """Zero retries, zero delays, infinite age and no deadline are valid choices."""
    c = NetworkConfig(
        max_retries=0,
        base_retry_delay=0,
        max_retry_delay=0,
        max_connection_age=math.inf,
        request_deadline=None,
        ws_url="ws://127.0.0.1:8765/socket.io/websocket",
        redis_url="redis://127.0.0.1:6379/0",
        origin="https://www.tradingview.com/",
    )
    assert c.max_connection_age == math.inf
    assert c.base_retry_delay == 0.0
    assert isinstance(c.base_retry_delay, float)
    assert c.origin == "https://www.tradingview.com"


def test_replace_validates() -> None:
    """replace() returns a validated copy and leaves the original unchanged."""
    c = NetworkConfig()
    d = c.replace(connect_timeout=2.5)
    assert d.connect_timeout == 2.5
    assert c.connect_timeout == 10.0
    with pytest.raises(ConfigurationError, match="connect_timeout"):
        c.replace(connect_timeout=-1)


def test_repr_hides_header_values_and_redis_password() -> None:
    """Cookies in headers and a Redis password never appear in the repr."""
    c = NetworkConfig(
        ws_headers={"Cookie": "sessionid=SECRET1"}, redis_url="redis://:SECRET2@127.0.0.1:6379/0"
    )
    text = repr(c)
    assert "SECRET1" not in text
    assert "SECRET2" not in text
    assert "Cookie" in text
    assert "redis://:***@127.0.0.1:6379/0" in text


def test_header_error_does_not_echo_value() -> None:
    """A bad header value (maybe a cookie) is refused without quoting it."""
    with pytest.raises(ConfigurationError) as info:
        NetworkConfig(ws_headers={"Cookie": "SECRET\n"})
    assert "SECRET" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# from_env
# ---------------------------------------------------------------------------------------------

_GOOD_ENV: dict[str, tuple[str, Any]] = {
    "TV_WS_URL": ("ws://127.0.0.1:9/socket.io/websocket", "ws://127.0.0.1:9/socket.io/websocket"),
    "TV_ORIGIN": ("https://www.tradingview.com", "https://www.tradingview.com"),
    "TV_SEARCH_URL": ("http://127.0.0.1:9/search/", "http://127.0.0.1:9/search/"),
    "TV_SIGNIN_URL": ("http://127.0.0.1:9/signin/", "http://127.0.0.1:9/signin/"),
    "TV_CONNECT_TIMEOUT": ("2.5", 2.5),
    "TV_SEND_TIMEOUT": ("1", 1.0),
    "TV_RECV_TIMEOUT": ("45", 45.0),
    "TV_PROGRESS_TIMEOUT": ("12", 12.0),
    "TV_REQUEST_DEADLINE": ("none", None),
    "TV_MAX_RETRIES": ("7", 7),
    "TV_BASE_RETRY_DELAY": ("0.5", 0.5),
    "TV_MAX_RETRY_DELAY": ("9", 9.0),
    "TV_REQUESTS_PER_MINUTE": ("30", 30),
    "TV_BURST_SIZE": ("4", 4),
    "TV_REUSE_CONNECTIONS": ("false", False),
    "TV_MAX_CONNECTION_AGE": ("inf", math.inf),
    "TV_REDIS_URL": ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
}


def test_env_table_covers_every_variable() -> None:
    """The test table and ENV_VARIABLES list the same variables (the issue's list included)."""
    assert set(_GOOD_ENV) == set(ENV_VARIABLES)
    required = {
        "TV_WS_URL", "TV_SEARCH_URL", "TV_SIGNIN_URL", "TV_CONNECT_TIMEOUT", "TV_SEND_TIMEOUT",
        "TV_RECV_TIMEOUT", "TV_MAX_RETRIES", "TV_BASE_RETRY_DELAY", "TV_MAX_RETRY_DELAY",
        "TV_REQUESTS_PER_MINUTE", "TV_BURST_SIZE", "TV_REDIS_URL",
    }  # fmt: skip
    assert required <= set(ENV_VARIABLES)


@pytest.mark.parametrize("variable", sorted(_GOOD_ENV))
def test_from_env_reads_each_variable(variable: str) -> None:
    """Each TV_* variable alone sets its field to the parsed value."""
    raw, expected = _GOOD_ENV[variable]
    field = ENV_VARIABLES[variable][0]
    c = NetworkConfig.from_env({variable: raw})
    assert getattr(c, field) == expected
    assert getattr(NetworkConfig.from_env({}), field) == getattr(NetworkConfig(), field)


def test_from_env_all_at_once() -> None:
    """All variables together produce the expected config."""
    c = NetworkConfig.from_env({k: v[0] for k, v in _GOOD_ENV.items()})
    for variable, (_raw, expected) in _GOOD_ENV.items():
        assert getattr(c, ENV_VARIABLES[variable][0]) == expected


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, os.environ is read."""
    monkeypatch.setenv("TV_RECV_TIMEOUT", "17")
    assert NetworkConfig.from_env().recv_timeout == 17.0


def test_from_env_overrides_win_and_empty_is_unset() -> None:
    """Keyword overrides beat the environment; an empty variable keeps the default."""
    c = NetworkConfig.from_env(
        {"TV_CONNECT_TIMEOUT": "3", "TV_SEND_TIMEOUT": "  ", "TV_MAX_RETRIES": "bad"},
        max_retries=1,
    )
    assert c.connect_timeout == 3.0
    assert c.send_timeout == 5.0
    assert c.max_retries == 1


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("TV_WS_URL", "http://example.com/ws"),
        ("TV_ORIGIN", "https://www.tradingview.com/path"),
        ("TV_SEARCH_URL", "wss://x/"),
        ("TV_SIGNIN_URL", "nope"),
        ("TV_CONNECT_TIMEOUT", "abc"),
        ("TV_CONNECT_TIMEOUT", "-1"),
        ("TV_SEND_TIMEOUT", "nan"),
        ("TV_RECV_TIMEOUT", "inf"),
        ("TV_PROGRESS_TIMEOUT", "0"),
        ("TV_REQUEST_DEADLINE", "soon"),
        ("TV_MAX_RETRIES", "3.5"),
        ("TV_MAX_RETRIES", "-2"),
        ("TV_BASE_RETRY_DELAY", "x"),
        ("TV_BASE_RETRY_DELAY", "100"),
        ("TV_MAX_RETRY_DELAY", "1"),
        ("TV_REQUESTS_PER_MINUTE", "0"),
        ("TV_REQUESTS_PER_MINUTE", "ten"),
        ("TV_BURST_SIZE", "-5"),
        ("TV_REUSE_CONNECTIONS", "maybe"),
        ("TV_MAX_CONNECTION_AGE", "0"),
        ("TV_REDIS_URL", "http://127.0.0.1:6379"),
    ],
)
def test_from_env_bad_value_names_the_variable(variable: str, raw: str) -> None:
    """A bad value raises ConfigurationError naming the environment variable."""
    with pytest.raises(ConfigurationError) as info:
        NetworkConfig.from_env({variable: raw})
    assert variable in str(info.value)


def test_from_env_does_not_echo_redis_password() -> None:
    """A malformed TV_REDIS_URL with a password is refused without quoting the password."""
    with pytest.raises(ConfigurationError) as info:
        NetworkConfig.from_env({"TV_REDIS_URL": "http://:SECRET@127.0.0.1:6379"})
    assert "SECRET" not in str(info.value)
    assert "TV_REDIS_URL" in str(info.value)


@given(
    timeout=st.floats(allow_nan=True, allow_infinity=True),
    retries=st.integers(min_value=-5, max_value=50),
)
def test_validation_property(timeout: float, retries: int) -> None:
    """A config builds exactly when the timeout is finite and positive and retries are >= 0."""
    valid = math.isfinite(timeout) and timeout > 0 and retries >= 0
    try:
        c = NetworkConfig(recv_timeout=timeout, max_retries=retries)
    except ConfigurationError:
        assert not valid
    else:
        assert valid
        assert c.recv_timeout == timeout
