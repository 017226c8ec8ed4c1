"""Tests for tvadapter._http: typed errors, Retry-After, redirects, cookies, limits, redaction."""

from __future__ import annotations

import email.utils
import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvadapter._http import HttpClient, parse_retry_after, safe_url
from tvadapter.config import NetworkConfig
from tvadapter.errors import (
    HttpStatusError,
    ProtocolError,
    RateLimitedError,
    TvConnectionError,
    TvTimeoutError,
)

NOW = 1_700_000_000.0


@dataclass
class Box:
    """What the test server saw, and how it should misbehave."""

    url: str = ""
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)


def make_handler(box: Box) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def _route(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            box.seen.append((self.command, self.path, dict(self.headers.items()), body))
            path = self.path.split("?")[0]
            if path.startswith("/status/"):
                self._answer(int(path.split("/")[2]), b'{"x":1}', Retry_After="3")
            elif path.startswith("/redirect/"):
                _, _, code, n = path.split("/")
                target = "/echo" if int(n) <= 1 else f"/redirect/{code}/{int(n) - 1}"
                self._answer(int(code), Location=target, Set_Cookie="hop=1; Path=/")
            elif path == "/to-ftp":
                self._answer(302, Location="ftp://127.0.0.1/x")
            elif path == "/big":
                self._answer(200, b"x" * 5000)
            elif path == "/drip":
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
            elif path == "/cut":
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.write(b"partial")
            elif path == "/latin":
                self._answer(200, "é".encode("latin-1"), Content_Type="text/plain; charset=latin-1")
            else:
                self._answer(200, b'{"ok": true}', Content_Type="application/json")

        do_GET = _route
        do_POST = _route

    return Handler


class QuietServer(http.server.ThreadingHTTPServer):
    """Threading HTTP server, quiet about client disconnects; closing joins handler threads."""

    daemon_threads = False
    block_on_close = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture
def box() -> Iterator[Box]:
    """A test HTTP server on 127.0.0.1."""
    state = Box()
    server = QuietServer(("127.0.0.1", 0), make_handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- Retry-After --------------------------------------------------------------------------------


@given(st.integers(0, 10**9))
def test_retry_after_delta_seconds(seconds: int) -> None:
    """Delta-seconds parse to exactly that many seconds."""
    assert parse_retry_after(str(seconds)) == float(seconds)
    assert parse_retry_after(f"  {seconds} ") == float(seconds)


@given(st.integers(-86_400, 86_400 * 30))
def test_retry_after_http_date(offset: int) -> None:
    """An HTTP-date gives its distance from the wall clock, never negative."""
    value = email.utils.formatdate(NOW + offset, usegmt=True)
    assert parse_retry_after(value, wall_clock=lambda: NOW) == max(0.0, float(offset))


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1e3", "nan", "Wed, 99 Foo 2015"])
def test_retry_after_garbage_is_none(value: str | None) -> None:
    """Missing or unparseable values give None rather than an exception."""
    assert parse_retry_after(value) is None


def test_safe_url_drops_query_and_credentials() -> None:
    """safe_url keeps scheme, host, port and path only."""
    assert (
        safe_url("https://user:pw@example.com:8443/a/b?token=SECRET#frag")
        == "https://example.com:8443/a/b"
    )


# -- statuses and errors ----------------------------------------------------------------------


def test_ok_answer(box: Box) -> None:
    """A 200 answer comes back with its status, body and JSON."""
    response = HttpClient().get(box.url + "/echo", params={"a": "1 2"})
    assert response.status == 200 and response.json() == {"ok": True}
    assert box.seen[0][1] == "/echo?a=1+2"


@pytest.mark.parametrize("status", [400, 403, 404, 500, 502, 503])
def test_error_statuses_raise_http_status_error(box: Box, status: int) -> None:
    """Any non-2xx (but 429) raises HttpStatusError carrying status and Retry-After."""
    with pytest.raises(HttpStatusError) as info:
        HttpClient().get(box.url + f"/status/{status}")
    assert info.value.status == status and info.value.retry_after == 3.0
    assert info.value.retryable is (status >= 500)


def test_429_raises_rate_limited(box: Box) -> None:
    """HTTP 429 raises RateLimitedError with retry_after from the header."""
    with pytest.raises(RateLimitedError) as info:
        HttpClient().get(box.url + "/status/429")
    assert info.value.retry_after == 3.0


def test_error_status_can_be_returned(box: Box) -> None:
    """raise_for_status=False hands back the answer (sign-in reads error bodies)."""
    response = HttpClient().get(box.url + "/status/400", raise_for_status=False)
    assert response.status == 400 and response.json() == {"x": 1}


def test_connection_refused() -> None:
    """Nothing listening: TvConnectionError saying so."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TvConnectionError, match="refused"):
        HttpClient().get(f"http://127.0.0.1:{port}/")


def test_accept_but_never_answer_times_out() -> None:
    """A server that accepts and stays silent: TvTimeoutError after the timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with pytest.raises(TvTimeoutError):
            HttpClient(timeout=0.2).get(f"http://127.0.0.1:{port}/")


def test_slow_drip_is_bounded_by_the_total_timeout(box: Box) -> None:
    """A body dripping a byte every 50 ms is cut by total_timeout, not read for 5 s."""
    started = time.monotonic()
    with pytest.raises(TvTimeoutError):
        HttpClient(timeout=1.0, total_timeout=0.3).get(box.url + "/drip")
    assert time.monotonic() - started < 4.0


def test_truncated_body_is_a_connection_error(box: Box) -> None:
    """A body shorter than its Content-Length raises TvConnectionError."""
    with pytest.raises(TvConnectionError):
        HttpClient().get(box.url + "/cut")


def test_body_size_is_bounded(box: Box) -> None:
    """A body larger than max_body raises ProtocolError instead of filling memory."""
    with pytest.raises(ProtocolError, match="larger"):
        HttpClient(max_body=1000).get(box.url + "/big")


def test_declared_charset_is_used(box: Box) -> None:
    """text() decodes with the charset in Content-Type."""
    assert HttpClient().get(box.url + "/latin").text() == "é"


# -- redirects and cookies ----------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirects_are_followed(box: Box, code: int) -> None:
    """Up to max_redirects hops are followed; the final URL is reported."""
    response = HttpClient(max_redirects=5).get(box.url + f"/redirect/{code}/5")
    assert response.status == 200 and response.url.endswith("/echo")


def test_too_many_redirects(box: Box) -> None:
    """One hop more than max_redirects raises HttpStatusError instead of looping."""
    with pytest.raises(HttpStatusError, match="more than 2 redirects"):
        HttpClient(max_redirects=2).get(box.url + "/redirect/302/3")


def test_post_becomes_get_after_303_but_307_keeps_it(box: Box) -> None:
    """303 turns a POST into a GET without body; 307 repeats the POST with its body."""
    client = HttpClient()
    client.post_form(box.url + "/redirect/303/1", {"a": "b"})
    assert [s[0] for s in box.seen] == ["POST", "GET"] and box.seen[1][3] == b""
    box.seen.clear()
    client.post_form(box.url + "/redirect/307/1", {"a": "b"})
    assert [s[0] for s in box.seen] == ["POST", "POST"] and box.seen[1][3] == b"a=b"


def test_redirect_to_other_scheme_is_refused(box: Box) -> None:
    """A redirect to a non-HTTP URL raises instead of being followed."""
    with pytest.raises(HttpStatusError, match="non-HTTP"):
        HttpClient().get(box.url + "/to-ftp")


def test_cookies_are_stored_and_sent_back(box: Box) -> None:
    """Set-Cookie is kept in the jar and sent on later requests to the same host."""
    client = HttpClient()
    client.get(box.url + "/redirect/302/1")
    assert client.cookie("hop") == "1"
    client.set_cookie("sessionid", "abc", box.url)
    client.get(box.url + "/echo")
    assert "sessionid=abc" in box.seen[-1][2]["Cookie"]
    assert client.fork().cookie("sessionid") is None
    client.clear_cookies()
    assert client.cookie("hop") is None


def test_cookie_not_sent_to_another_host(box: Box) -> None:
    """A cookie set for one host is not sent to a different host."""
    client = HttpClient()
    client.set_cookie("sessionid", "abc", "http://example.invalid/")
    client.get(box.url + "/echo")
    assert "Cookie" not in box.seen[-1][2]


def test_multipart_form(box: Box) -> None:
    """post_form(multipart=True) sends a multipart/form-data body with every field."""
    HttpClient().post_form(box.url + "/echo", {"username": "u", "password": 'p"w'}, multipart=True)
    _, _, headers, body = box.seen[-1]
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="username"\r\n\r\nu\r\n' in body and b'p"w' in body


def test_logs_and_reprs_hold_no_secrets(box: Box, caplog: pytest.LogCaptureFixture) -> None:
    """Query strings, cookies and bodies never reach log lines, reprs or messages."""
    caplog.set_level(logging.DEBUG, logger="tvadapter._http")
    client = HttpClient()
    client.set_cookie("sessionid", "COOKIE-SECRET", box.url)
    response = client.get(box.url + "/echo", params={"token": "QUERY-SECRET"})
    client.post_form(box.url + "/echo", {"password": "BODY-SECRET"})
    with pytest.raises(HttpStatusError) as info:
        client.get(box.url + "/status/500", params={"token": "QUERY-SECRET"})
    texts = [caplog.text, repr(response), repr(client), str(info.value), repr(info.value)]
    assert "/echo" in caplog.text
    for text in texts:
        for secret in ("COOKIE-SECRET", "QUERY-SECRET", "BODY-SECRET"):
            assert secret not in text


def test_from_config_uses_its_timeouts() -> None:
    """from_config takes connect_timeout, request_deadline and user_agent from the config."""
    config = NetworkConfig(connect_timeout=3.5, request_deadline=42.0, user_agent="ua/1")
    client = HttpClient.from_config(config)
    assert (client.timeout, client.total_timeout, client.user_agent) == (3.5, 42.0, "ua/1")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"total_timeout": -1}, "total_timeout"),
        ({"max_redirects": -1}, "max_redirects"),
        ({"max_body": 0}, "max_body"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, Any], name: str) -> None:
    """Bad constructor values raise ValueError naming the parameter."""
    with pytest.raises(ValueError, match=name):
        HttpClient(**kwargs)
