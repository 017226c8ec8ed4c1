"""Tests for tvadapter._auth: sign-in flows, token renewal, redaction, thread-safety.

The flows run against a small TradingView-like HTTP server on 127.0.0.1 defined here (sign-in
with Origin/Referer checks, captcha, 2FA + TOTP, rate limit, a home page carrying
``"auth_token":"..."`` for a valid session cookie).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import http.server
import json
import logging
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.testing import FakeClock
from tvadapter._auth import (
    ANONYMOUS_TOKEN,
    Authenticator,
    Credentials,
    TokenInfo,
    decode_jwt_claims,
)
from tvadapter._http import HttpClient
from tvadapter.config import NetworkConfig
from tvadapter.errors import (
    AuthenticationError,
    CaptchaRequiredError,
    HttpStatusError,
    InvalidCredentialsError,
    RateLimitedError,
    TokenExpiredError,
    TvConnectionError,
    TvTimeoutError,
    TwoFactorRequiredError,
)

ORIGIN = "https://www.tradingview.com"
PASSWORD = "pw-Zebra-7731-SECRET"
TOTP_CODE = "492817"
START = 1_700_000_000.0  # wall-clock epoch seconds the fake server and fake wall clock start at


def make_jwt(claims: dict[str, Any]) -> str:
    """A JWT-shaped token with ``claims`` (the signature part is random bytes)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "RS512", "kid": "GZxU", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    return f"{header}.{body}.{b64(secrets.token_bytes(64))}"


@dataclass
class User:
    password: str
    plan: str = "pro"
    totp: str | None = None
    answer: dict[str, Any] | None = None  # forced sign-in answer (captcha, rate limit...)


@dataclass
class MiniTV:
    """A TradingView-like HTTP side; ``wall`` is the server's clock (epoch seconds)."""

    users: dict[str, User] = field(default_factory=dict)
    wall: float = START
    lifetime: float = 14_400.0
    sessions: dict[str, str] = field(default_factory=dict)  # sessionid -> username
    pending_2fa: dict[str, str] = field(default_factory=dict)  # cookie -> username
    signins: int = 0
    totps: int = 0
    homes: int = 0
    home_redirects: int = 0
    delay: float = 0.0
    status: int | None = None  # forced status for every answer
    retry_after: str | None = None
    cookies_only: bool = False  # sign-in answer without user.auth_token
    last_headers: dict[str, str] = field(default_factory=dict)
    last_content_type: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def token(self, username: str) -> str:
        user = self.users[username]
        return make_jwt(
            {
                "user_id": 42,
                "iat": int(self.wall),
                "exp": int(self.wall + self.lifetime),
                "plan": user.plan,
                "max_connections": 10,
                "nonce": secrets.token_hex(4),
            }
        )

    def config(self) -> NetworkConfig:
        return NetworkConfig(
            signin_url=self.url + "/accounts/signin/",
            totp_url=self.url + "/accounts/two-factor/signin/totp/",
            home_url=self.url + "/",
            search_url=self.url + "/symbol_search/v3/",
        )


def _form(handler: http.server.BaseHTTPRequestHandler) -> dict[str, str]:
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length)
    ctype = handler.headers.get("Content-Type") or ""
    if ctype.startswith("multipart/form-data"):
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + body
        )
        out: dict[str, str] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            out[str(name)] = part.get_content().strip()
        return out
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}


def make_handler(tv: MiniTV) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self,
            status: int,
            body: bytes,
            *,
            ctype: str = "application/json",
            cookies: dict[str, str] | None = None,
            location: str | None = None,
        ) -> None:
            if tv.status is not None:
                status = tv.status
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if tv.retry_after is not None:
                self.send_header("Retry-After", tv.retry_after)
            for name, value in (cookies or {}).items():
                self.send_header("Set-Cookie", f"{name}={value}; Path=/; HttpOnly")
            if location:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, data: dict[str, Any], **kw: Any) -> None:
            self._send(200, json.dumps(data).encode(), **kw)

        def _cookies(self) -> dict[str, str]:
            out = {}
            for part in (self.headers.get("Cookie") or "").split(";"):
                name, _, value = part.strip().partition("=")
                if name:
                    out[name] = value
            return out

        def do_POST(self) -> None:
            if tv.delay:
                time.sleep(tv.delay)
            tv.last_headers = dict(self.headers.items())
            tv.last_content_type = self.headers.get("Content-Type") or ""
            form = _form(self)
            if self.headers.get("Origin") != ORIGIN or not (
                self.headers.get("Referer") or ""
            ).startswith(ORIGIN):
                self._send(403, b'{"error":"bad origin"}')
                return
            if self.path == "/accounts/signin/":
                with tv.lock:
                    tv.signins += 1
                user = tv.users.get(form.get("username", ""))
                if user is not None and user.answer is not None:
                    self._json(user.answer)
                    return
                if user is None or user.password != form.get("password"):
                    self._json(
                        {"error": "Invalid username or password", "code": "invalid_credentials"}
                    )
                    return
                if form.get("remember") != "on":
                    self._send(400, b'{"error":"remember missing"}')
                    return
                if user.totp is not None:
                    pending = secrets.token_hex(8)
                    tv.pending_2fa[pending] = form["username"]
                    self._json(
                        {"error": "2FA_required", "code": "2FA_required"},
                        cookies={"pending": pending},
                    )
                    return
                self._success(form["username"])
            elif self.path == "/accounts/two-factor/signin/totp/":
                with tv.lock:
                    tv.totps += 1
                username = tv.pending_2fa.get(self._cookies().get("pending", ""))
                if username is None:
                    self._json({"error": "no pending sign-in", "code": "no_session"})
                    return
                if form.get("code") != tv.users[username].totp:
                    self._json({"error": "Invalid code", "code": "invalid_code"})
                    return
                self._success(username)
            elif self.path == "/html/":
                self._send(200, b"<html>maintenance</html>", ctype="text/html")
            else:
                self._send(404, b"{}")

        def _success(self, username: str) -> None:
            sid = secrets.token_hex(16)
            tv.sessions[sid] = username
            user: dict[str, Any] = {"username": username, "id": 42}
            if not tv.cookies_only:
                user["auth_token"] = tv.token(username)
            self._json(
                {"error": "", "user": user},
                cookies={"sessionid": sid, "sessionid_sign": "v2:" + sid[::-1], "device_t": "x"},
            )

        def do_GET(self) -> None:
            if tv.delay:
                time.sleep(tv.delay)
            tv.last_headers = dict(self.headers.items())
            path = urllib.parse.urlsplit(self.path).path
            if path.startswith("/hop/"):
                n = int(path.split("/")[2])
                self._send(302, b"", location="/" if n <= 1 else f"/hop/{n - 1}/")
                return
            if path == "/":
                with tv.lock:
                    tv.homes += 1
                    hops = tv.home_redirects
                    tv.home_redirects = 0
                if hops:
                    self._send(302, b"", location=f"/hop/{hops}/")
                    return
                username = tv.sessions.get(self._cookies().get("sessionid", ""))
                if username is None:
                    page = '<html><script>window.user = {"auth_token":""};</script></html>'
                else:
                    data = json.dumps(
                        {"user": {"username": username, "auth_token": tv.token(username)}}
                    )
                    page = f"<html><script>window.initData = {data};</script></html>"
                self._send(200, page.encode(), ctype="text/html; charset=utf-8")
                return
            self._send(404, b"{}")

    return Handler


class QuietServer(http.server.ThreadingHTTPServer):
    """Threading HTTP server, quiet about client disconnects; closing joins handler threads."""

    daemon_threads = False
    block_on_close = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@pytest.fixture
def tv() -> Iterator[MiniTV]:
    """A MiniTV server with users alice (password), carol (2FA) on 127.0.0.1."""
    state = MiniTV(
        users={
            "alice": User(PASSWORD),
            "carol": User(PASSWORD, totp=TOTP_CODE, plan="pro_premium"),
            "robot": User(
                PASSWORD,
                answer={
                    "error": "Please confirm that you are not a robot by clicking the captcha box.",
                    "code": "recaptcha_required",
                },
            ),
            "busy": User(PASSWORD, answer={"error": "Too many attempts", "code": "rate_limit"}),
        }
    )
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


def make_auth(tv: MiniTV, creds: Credentials, **kw: Any) -> tuple[Authenticator, FakeClock]:
    clock = kw.pop("clock", None) or FakeClock(1000.0)
    wall = kw.pop("wall_clock", lambda: tv.wall)
    http = kw.pop("http", None) or HttpClient(timeout=5.0)
    auth = Authenticator(creds, config=tv.config(), http=http, clock=clock, wall_clock=wall, **kw)
    return auth, clock


def session_of(tv: MiniTV, username: str = "alice") -> str:
    sid = secrets.token_hex(16)
    tv.sessions[sid] = username
    return sid


# -- Credentials and JWT values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"username": "alice"}, "password"),
        ({"password": PASSWORD}, "username"),
        ({"session_id_sign": "abc"}, "session_id"),
        ({"token": ""}, "token"),
        ({"session_id": "a;b"}, "session_id"),
        ({"totp": "123456"}, "totp"),
    ],
)
def test_credentials_reject_incomplete_or_bad_values(kwargs: dict[str, Any], name: str) -> None:
    """Half-given credentials raise ValueError naming the parameter, never silently anonymous."""
    with pytest.raises(ValueError, match=name) as info:
        Credentials(**kwargs)
    assert PASSWORD not in str(info.value)


def test_credentials_type_checked() -> None:
    """A non-str secret is a TypeError naming the parameter."""
    with pytest.raises(TypeError, match="password"):
        Credentials(username="a", password=123)  # type: ignore[arg-type]


def test_credentials_repr_redacts_every_secret() -> None:
    """repr/str show the username and which secrets are set, never their values."""
    creds = Credentials(
        username="alice",
        password=PASSWORD,
        session_id="sid-SECRET-1",
        session_id_sign="sign-SECRET-2",
        token="tok-SECRET-3",
        totp=TOTP_CODE,
    )
    for text in (repr(creds), str(creds)):
        assert "alice" in text
        for secret in (PASSWORD, "sid-SECRET-1", "sign-SECRET-2", "tok-SECRET-3", TOTP_CODE):
            assert secret not in text
        assert "password=<redacted>" in text
    assert Credentials().is_anonymous
    assert not creds.is_anonymous and creds.can_sign_in


claims_strategy = st.fixed_dictionaries(
    {
        "exp": st.integers(0, 2**40),
        "iat": st.integers(0, 2**40),
        "plan": st.sampled_from(["", "pro", "pro_premium", "ultimate"]),
        "max_connections": st.integers(1, 200),
    },
    optional={"user_id": st.integers(1, 2**31), "x": st.text(max_size=20)},
)


@given(claims_strategy)
def test_jwt_claims_round_trip(claims: dict[str, Any]) -> None:
    """Any JSON claims survive encoding into a JWT and decoding (base64url, any padding)."""
    token = make_jwt(claims)
    assert decode_jwt_claims(token) == claims
    info = TokenInfo.parse(token, "given")
    assert info.expires_at == claims["exp"] and info.issued_at == claims["iat"]
    assert info.plan == claims["plan"] and info.max_connections == claims["max_connections"]
    assert token not in repr(info) and token not in str(info)


@pytest.mark.parametrize(
    "token",
    [ANONYMOUS_TOKEN, "a.b", "a.!!!.c", "a..c", "x." + base64.b64encode(b"[1]").decode() + ".y"],
)
def test_non_jwt_tokens_have_no_claims(token: str) -> None:
    """Tokens that are not JWTs with an object payload decode to None (opaque, no expiry)."""
    assert decode_jwt_claims(token) is None
    assert TokenInfo.parse(token, "given").expires_at is None


# -- anonymous --------------------------------------------------------------------------------


def test_anonymous_uses_the_unauthorized_token_without_io(tv: MiniTV) -> None:
    """No credentials: the anonymous token, no request to the server, is_anonymous set."""
    auth, _ = make_auth(tv, Credentials())
    assert auth.token() == ANONYMOUS_TOKEN == "unauthorized_user_token"
    assert auth.is_anonymous and auth.plan is None and auth.max_connections is None
    assert tv.signins == tv.homes == 0
    assert repr(auth) == "Authenticator(anonymous)"


# -- password flow ----------------------------------------------------------------------------


@pytest.mark.parametrize("multipart", [True, False])
def test_password_sign_in_returns_the_servers_token(tv: MiniTV, multipart: bool) -> None:
    """A password sign-in (multipart or urlencoded) yields the token from user.auth_token."""
    auth, _ = make_auth(tv, Credentials(username="alice", password=PASSWORD), multipart=multipart)
    info = auth.token_info()
    claims = decode_jwt_claims(info.value)
    assert claims is not None and claims["plan"] == "pro"
    assert info.source == "password"
    assert auth.plan == "pro" and auth.max_connections == 10
    assert auth.expires_at == START + 14_400
    assert tv.signins == 1 and auth.sign_ins == 1
    assert ("multipart" in tv.last_content_type) is multipart
    assert auth.token() == info.value and tv.signins == 1  # cached: no second sign-in


def test_sign_in_sends_origin_and_referer(tv: MiniTV) -> None:
    """The sign-in carries Origin and a Referer under it (the server 403s otherwise)."""
    auth, _ = make_auth(tv, Credentials(username="alice", password=PASSWORD))
    auth.token()
    assert tv.last_headers["Origin"] == ORIGIN
    assert tv.last_headers["Referer"] == ORIGIN + "/"


def test_sign_in_with_wrong_origin_is_refused(tv: MiniTV) -> None:
    """With another origin configured, the server's 403 surfaces as an authentication error."""
    config = tv.config().replace(origin="https://evil.example.com")
    auth = Authenticator(
        Credentials(username="alice", password=PASSWORD), config=config, clock=FakeClock()
    )
    with pytest.raises(AuthenticationError, match="HTTP 403") as info:
        auth.token()
    assert not isinstance(info.value, InvalidCredentialsError)


def test_cookies_only_answer_falls_back_to_the_home_page(tv: MiniTV) -> None:
    """A success answer without user.auth_token: the token is read via the session cookie."""
    tv.cookies_only = True
    auth, _ = make_auth(tv, Credentials(username="alice", password=PASSWORD))
    assert decode_jwt_claims(auth.token()) is not None
    assert tv.signins == 1 and tv.homes == 1


def test_wrong_password_is_invalid_credentials(tv: MiniTV) -> None:
    """A wrong password raises InvalidCredentialsError (no anonymous fallback)."""
    auth, _ = make_auth(tv, Credentials(username="alice", password="nope-" + PASSWORD))
    with pytest.raises(InvalidCredentialsError, match="username or password"):
        auth.token()


def test_captcha_is_a_clear_error_advising_the_session_cookie(tv: MiniTV) -> None:
    """recaptcha_required raises CaptchaRequiredError advising the session-cookie flow."""
    auth, _ = make_auth(tv, Credentials(username="robot", password=PASSWORD))
    with pytest.raises(CaptchaRequiredError, match="session_id"):
        auth.token()


def test_refused_sign_in_is_not_retried_during_the_cooldown(tv: MiniTV) -> None:
    """After a captcha, calls within the cool-down raise without asking the server again."""
    auth, clock = make_auth(
        tv, Credentials(username="robot", password=PASSWORD), login_cooldown=60.0
    )
    with pytest.raises(CaptchaRequiredError):
        auth.token()
    clock.advance(59)
    with pytest.raises(CaptchaRequiredError, match="not asking the server again"):
        auth.token()
    assert tv.signins == 1
    clock.advance(2)
    with pytest.raises(CaptchaRequiredError):
        auth.token()
    assert tv.signins == 2


def test_rate_limit_code_raises_rate_limited_with_retry_after(tv: MiniTV) -> None:
    """code rate_limit raises RateLimitedError carrying Retry-After; the cool-down honours it."""
    tv.retry_after = "120"
    auth, clock = make_auth(tv, Credentials(username="busy", password=PASSWORD), login_cooldown=5)
    with pytest.raises(RateLimitedError) as info:
        auth.token()
    assert info.value.retry_after == 120.0
    clock.advance(60)
    with pytest.raises(RateLimitedError):
        auth.token()
    assert tv.signins == 1


def test_two_factor_without_a_code_raises(tv: MiniTV) -> None:
    """2FA_required without a totp raises TwoFactorRequiredError explaining the options."""
    auth, _ = make_auth(tv, Credentials(username="carol", password=PASSWORD))
    with pytest.raises(TwoFactorRequiredError, match="totp"):
        auth.token()
    assert tv.totps == 0


@pytest.mark.parametrize("totp", [TOTP_CODE, lambda: TOTP_CODE])
def test_two_factor_with_a_code_signs_in(tv: MiniTV, totp: Any) -> None:
    """With a TOTP code (or a callable), the code is posted on the same cookie jar and works."""
    auth, _ = make_auth(tv, Credentials(username="carol", password=PASSWORD, totp=totp))
    assert auth.token_info().plan == "pro_premium"
    assert tv.signins == 1 and tv.totps == 1


def test_two_factor_with_a_wrong_code_raises(tv: MiniTV) -> None:
    """A rejected TOTP code raises TwoFactorRequiredError saying it was not accepted."""
    auth, _ = make_auth(tv, Credentials(username="carol", password=PASSWORD, totp="000000"))
    with pytest.raises(TwoFactorRequiredError, match="not accepted"):
        auth.token()


# -- cookie flow ------------------------------------------------------------------------------


def test_session_cookie_flow_reads_the_token_from_the_home_page(tv: MiniTV) -> None:
    """A valid sessionid yields the token embedded in the home page; no password sign-in."""
    auth, _ = make_auth(tv, Credentials(session_id=session_of(tv), session_id_sign="sig"))
    info = auth.token_info()
    assert info.source == "cookie" and info.plan == "pro"
    assert tv.homes == 1 and tv.signins == 0
    assert "sessionid=" in tv.last_headers.get("Cookie", "")


def test_session_cookie_flow_follows_redirects(tv: MiniTV) -> None:
    """Up to 5 redirects are followed to the page carrying the token, cookie kept."""
    tv.home_redirects = 4  # / -> /hop/4/ -> ... -> /hop/1/ -> /  (5 redirects)
    auth, _ = make_auth(tv, Credentials(session_id=session_of(tv)))
    assert auth.token_info().source == "cookie"


def test_session_cookie_flow_stops_after_too_many_redirects(tv: MiniTV) -> None:
    """A sixth redirect is an error, not an endless loop."""
    tv.home_redirects = 5
    auth, _ = make_auth(tv, Credentials(session_id=session_of(tv)))
    with pytest.raises(HttpStatusError, match="redirects"):
        auth.token()


def test_rejected_session_cookie_is_an_authentication_error(tv: MiniTV) -> None:
    """A page without a token (expired cookie) raises 'session cookie not accepted'."""
    auth, _ = make_auth(tv, Credentials(session_id="unknown-session"))
    with pytest.raises(AuthenticationError, match="session cookie not accepted"):
        auth.token()


def test_rejected_cookie_falls_back_to_the_password(tv: MiniTV) -> None:
    """With both a dead cookie and a password, the password flow takes over."""
    auth, _ = make_auth(
        tv, Credentials(username="alice", password=PASSWORD, session_id="dead-session")
    )
    assert auth.token_info().source == "password"
    assert tv.homes == 1 and tv.signins == 1


# -- expiry and renewal -----------------------------------------------------------------------


def test_token_is_renewed_before_expiry_through_the_cookie(tv: MiniTV) -> None:
    """Near expiry a new token is fetched, using the session cookie the password sign-in set."""
    auth, clock = make_auth(
        tv, Credentials(username="alice", password=PASSWORD), refresh_margin=300
    )
    first = auth.token()
    clock.advance(14_400 - 301)
    assert auth.token() == first and tv.homes == 0  # still outside the margin
    clock.advance(2)
    tv.wall += 14_400 - 299
    second = auth.token()
    assert second != first
    assert tv.signins == 1 and tv.homes == 1  # renewed with the cookie, not the password
    assert auth.sign_ins == 2 and auth.token() == second


def test_given_token_is_used_until_it_expires_then_raises(tv: MiniTV) -> None:
    """A ready token is used without I/O; once expired it raises TokenExpiredError."""
    token = make_jwt({"iat": START - 600, "exp": START + 600, "plan": "", "max_connections": 2})
    auth, clock = make_auth(tv, Credentials(token=token))
    assert auth.token() == token and auth.plan == "" and auth.max_connections == 2
    clock.advance(599)  # inside the renewal margin, but it cannot be renewed: still usable
    assert auth.token() == token
    clock.advance(2)
    with pytest.raises(TokenExpiredError, match="expired") as info:
        auth.token()
    assert token not in str(info.value)
    assert tv.signins == tv.homes == 0


def test_given_token_already_expired_by_the_wall_clock(tv: MiniTV) -> None:
    """A ready token whose exp is before wall_clock() fails at once (the one wall comparison)."""
    token = make_jwt({"iat": START - 20_000, "exp": START - 5_600})
    auth, _ = make_auth(tv, Credentials(token=token), wall_clock=lambda: START)
    with pytest.raises(TokenExpiredError):
        auth.token()


def test_given_token_with_a_password_is_renewed(tv: MiniTV) -> None:
    """A ready token plus a password: the token first, then a sign-in near its expiry."""
    token = make_jwt({"iat": START - 14_000, "exp": START + 400})
    auth, clock = make_auth(tv, Credentials(username="alice", password=PASSWORD, token=token))
    assert auth.token() == token
    clock.advance(150)  # 250 s left < 300 s margin
    renewed = auth.token_info()
    assert renewed.value != token and renewed.source == "password" and tv.signins == 1


def test_failed_renewal_keeps_the_still_valid_token(
    tv: MiniTV, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewal that fails while the token still works returns it (warning), then raises."""
    auth, clock = make_auth(tv, Credentials(username="alice", password=PASSWORD))
    first = auth.token()
    clock.advance(14_400 - 100)
    tv.status = 503
    with caplog.at_level(logging.WARNING, logger="tvadapter._auth"):
        assert auth.token() == first
    assert "renewal failed" in caplog.text
    clock.advance(101)
    with pytest.raises(HttpStatusError) as info:
        auth.token()
    assert info.value.status == 503


def test_short_lived_tokens_do_not_cause_a_sign_in_per_call(tv: MiniTV) -> None:
    """A token shorter-lived than the margin is still reused for half its lifetime."""
    tv.lifetime = 120
    auth, clock = make_auth(tv, Credentials(username="alice", password=PASSWORD))
    first = auth.token()
    clock.advance(59)
    assert auth.token() == first and auth.sign_ins == 1


def test_wrong_local_clock_does_not_cause_a_sign_in_loop(tv: MiniTV) -> None:
    """With the local wall clock 5 h ahead, a fresh token is still used for its lifetime."""
    auth, clock = make_auth(
        tv, Credentials(username="alice", password=PASSWORD), wall_clock=lambda: tv.wall + 18_000
    )
    first = auth.token()
    clock.advance(3_600)
    assert auth.token() == first and auth.sign_ins == 1


def test_invalidate_forces_a_new_sign_in(tv: MiniTV) -> None:
    """A token the server refused is replaced on the next call; an old token cannot evict a new."""
    auth, _ = make_auth(tv, Credentials(username="alice", password=PASSWORD))
    first = auth.token()
    auth.invalidate(first)
    second = auth.token()
    assert second != first
    auth.invalidate(first)  # stale: ignored
    assert auth.token() == second and auth.sign_ins == 2


def test_invalidated_given_token_raises_token_expired(tv: MiniTV) -> None:
    """A refused ready-made token that cannot be renewed raises TokenExpiredError."""
    auth, _ = make_auth(tv, Credentials(token="opaque-token-value"))
    assert auth.token() == "opaque-token-value"
    auth.invalidate()
    with pytest.raises(TokenExpiredError, match="refused"):
        auth.token()


def test_refresh_forces_a_new_token(tv: MiniTV) -> None:
    """refresh() signs in again even though the current token is fresh."""
    auth, _ = make_auth(tv, Credentials(username="alice", password=PASSWORD))
    first = auth.token()
    assert auth.refresh().value != first and auth.sign_ins == 2


# -- transport errors -------------------------------------------------------------------------


def test_server_error_on_sign_in_is_typed(tv: MiniTV) -> None:
    """A 500 on sign-in raises HttpStatusError with the status (retryable), not a silent None."""
    tv.status = 500
    auth, _ = make_auth(tv, Credentials(username="alice", password=PASSWORD))
    with pytest.raises(HttpStatusError) as info:
        auth.token()
    assert info.value.status == 500 and info.value.retryable


def test_http_429_on_sign_in_is_rate_limited(tv: MiniTV) -> None:
    """An HTTP 429 answer raises RateLimitedError with the parsed Retry-After."""
    tv.status, tv.retry_after = 429, "7"
    auth, _ = make_auth(tv, Credentials(username="alice", password=PASSWORD))
    with pytest.raises(RateLimitedError) as info:
        auth.token()
    assert info.value.retry_after == 7.0


def test_connection_refused_is_typed() -> None:
    """Nothing listening: TvConnectionError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = NetworkConfig(signin_url=f"http://127.0.0.1:{port}/accounts/signin/")
    auth = Authenticator(
        Credentials(username="alice", password=PASSWORD), config=config, clock=FakeClock()
    )
    with pytest.raises(TvConnectionError, match="refused"):
        auth.token()


def test_slow_server_times_out(tv: MiniTV) -> None:
    """A server slower than the HTTP timeout raises TvTimeoutError."""
    tv.delay = 1.0
    auth, _ = make_auth(
        tv, Credentials(username="alice", password=PASSWORD), http=HttpClient(timeout=0.2)
    )
    with pytest.raises(TvTimeoutError):
        auth.token()


def test_non_json_sign_in_answer_is_an_authentication_error(tv: MiniTV) -> None:
    """A 200 answer that is not JSON raises AuthenticationError, not a KeyError."""
    bad = tv.config().replace(signin_url=tv.url + "/html/")
    auth = Authenticator(
        Credentials(username="alice", password=PASSWORD), config=bad, clock=FakeClock()
    )
    with pytest.raises(AuthenticationError, match="not JSON"):
        auth.token()


# -- secrets ------------------------------------------------------------------------------------


def _all_texts(exc: BaseException | None) -> list[str]:
    texts = []
    while exc is not None:
        texts += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return texts


def test_secrets_never_reach_logs_reprs_or_errors(
    tv: MiniTV, caplog: pytest.LogCaptureFixture
) -> None:
    """Across every flow, no password, cookie, token or TOTP code appears in any output."""
    sid = session_of(tv)
    given = make_jwt({"iat": START, "exp": START + 60, "marker": "GIVEN-TOKEN-MARK"})
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    tokens: list[str] = [given]
    scenarios: list[Credentials] = [
        Credentials(username="alice", password=PASSWORD),
        Credentials(username="carol", password=PASSWORD, totp=TOTP_CODE),
        Credentials(username="carol", password=PASSWORD, totp="999999"),
        Credentials(username="alice", password="wrong-" + PASSWORD),
        Credentials(username="robot", password=PASSWORD),
        Credentials(session_id=sid, session_id_sign="SIGN-SECRET-XYZ"),
        Credentials(session_id="DEAD-SESSION-SECRET"),
        Credentials(token=given),
        Credentials(username="alice", password=PASSWORD, session_id="DEAD-SESSION-SECRET"),
    ]
    for creds in scenarios:
        auth, clock = make_auth(tv, creds)
        texts += [repr(creds), str(creds), repr(auth), str(auth)]
        for _ in range(2):
            try:
                info = auth.token_info()
                tokens.append(info.value)
                texts += [repr(info), str(info), repr(auth)]
            except Exception as exc:
                texts += _all_texts(exc)
            clock.advance(14_400)
            tv.wall += 14_400
    texts += [record.getMessage() for record in caplog.records]
    texts += [caplog.text]
    secret_values = [
        PASSWORD,
        TOTP_CODE,
        "999999",
        sid,
        "SIGN-SECRET-XYZ",
        "DEAD-SESSION-SECRET",
        *tv.sessions,
        *tokens,
    ]
    assert len(tokens) > 3
    for text in texts:
        for secret in secret_values:
            assert secret not in text, f"secret leaked into: {text[:120]}"
    assert any("signed in" in r.getMessage() for r in caplog.records)


def test_server_text_echoing_a_secret_is_scrubbed(tv: MiniTV) -> None:
    """A server error that quotes the password is scrubbed before it reaches the exception."""
    tv.users["alice"].answer = {"error": f"bad value {PASSWORD} given", "code": "weird"}
    auth, _ = make_auth(tv, Credentials(username="alice", password=PASSWORD))
    with pytest.raises(AuthenticationError) as info:
        auth.token()
    assert PASSWORD not in str(info.value) and "<redacted>" in str(info.value)


# -- threads ----------------------------------------------------------------------------------


def test_concurrent_callers_share_one_sign_in(tv: MiniTV) -> None:
    """Sixteen threads needing a token at once cause exactly one sign-in and get one token."""
    tv.delay = 0.2
    auth, _ = make_auth(tv, Credentials(username="alice", password=PASSWORD))
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(auth.token())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors and len(results) == 16
    assert len(set(results)) == 1 and tv.signins == 1


def test_concurrent_callers_all_see_a_failed_sign_in(tv: MiniTV) -> None:
    """When the shared sign-in fails, every waiting thread gets the typed error, one request."""
    tv.delay = 0.2
    auth, _ = make_auth(tv, Credentials(username="robot", password=PASSWORD))
    caught: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        try:
            auth.token()
        except BaseException as exc:
            caught.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(caught) == 8
    assert all(isinstance(exc, CaptchaRequiredError) for exc in caught)
    assert tv.signins == 1


def test_credentials_from_env() -> None:
    """TV_* variables build credentials; a half pair names the variable, not the value."""
    creds = Credentials.from_env({"TV_USERNAME": "alice", "TV_PASSWORD": PASSWORD})
    assert creds.username == "alice" and creds.password == PASSWORD
    assert Credentials.from_env({"TV_SESSION_ID": "sid", "TV_PASSWORD": ""}).session_id == "sid"
    assert Credentials.from_env({}).is_anonymous
    with pytest.raises(ValueError, match="TV_USERNAME is required with a TV_PASSWORD") as info:
        Credentials.from_env({"TV_PASSWORD": PASSWORD})
    assert PASSWORD not in str(info.value)
    with pytest.raises(ValueError, match="TV_PASSWORD is required with a TV_USERNAME"):
        Credentials.from_env({"TV_USERNAME": "alice"})


# -- against the project's fake TradingView server (tvadapter.testing) --------------------------


class Wall:
    """A settable wall clock shared by the fake server and the authenticator."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[tuple[Any, Wall]]:
    """tvadapter.testing.FakeTradingView with alice (pro), carol (2FA) and robot (captcha)."""
    from tvadapter.testing import FakeTradingView

    wall = Wall(START)
    server = FakeTradingView(
        wall_clock=wall,
        users={"alice": PASSWORD, "carol": PASSWORD, "robot": PASSWORD},
        user_plans={"alice": "pro", "carol": "pro_premium"},
        captcha_users=frozenset({"robot"}),
        twofa_users=frozenset({"carol"}),
        totp_code=TOTP_CODE,
    )
    with server:
        yield server, wall


def fake_config(server: Any) -> NetworkConfig:
    return NetworkConfig(
        signin_url=server.signin_url,
        totp_url=server.totp_url,
        home_url=server.homepage_url,
        search_url=server.search_url,
        origin=server.origin,
    )


def fake_auth(server: Any, wall: Wall, creds: Credentials) -> tuple[Authenticator, FakeClock]:
    clock = FakeClock(50.0)
    auth = Authenticator(creds, config=fake_config(server), clock=clock, wall_clock=wall)
    return auth, clock


def http_count(server: Any, what: str) -> int:
    return int(server.stats().http_requests.get(what, 0))


def test_fake_server_password_sign_in(fake: tuple[Any, Wall]) -> None:
    """Password sign-in against the fake server yields its JWT with plan and connection cap."""
    server, wall = fake
    auth, _ = fake_auth(server, wall, Credentials(username="alice", password=PASSWORD))
    info = auth.token_info()
    assert info.plan == "pro" and info.max_connections == 10
    assert info.expires_at == START + 14_400
    assert http_count(server, "POST /accounts/signin/") == 1


def test_fake_server_refusals(fake: tuple[Any, Wall]) -> None:
    """Captcha, 2FA without a code and a wrong password are distinct typed errors."""
    server, wall = fake
    cases = [
        (Credentials(username="robot", password=PASSWORD), CaptchaRequiredError),
        (Credentials(username="carol", password=PASSWORD), TwoFactorRequiredError),
        (Credentials(username="alice", password="x" + PASSWORD), InvalidCredentialsError),
        (Credentials(username="carol", password=PASSWORD, totp="000000"), TwoFactorRequiredError),
    ]
    for creds, error in cases:
        auth, _ = fake_auth(server, wall, creds)
        with pytest.raises(error):
            auth.token()


def test_fake_server_two_factor_with_code(fake: tuple[Any, Wall]) -> None:
    """2FA with the right TOTP code signs in on the same cookie jar."""
    server, wall = fake
    auth, _ = fake_auth(
        server, wall, Credentials(username="carol", password=PASSWORD, totp=TOTP_CODE)
    )
    assert auth.token_info().plan == "pro_premium"
    assert http_count(server, "POST /accounts/two-factor/signin/totp/") == 1


def test_fake_server_cookie_flow_and_renewal(fake: tuple[Any, Wall]) -> None:
    """A browser sessionid gives a token from the homepage, renewed the same way near expiry."""
    server, wall = fake
    browser = HttpClient()
    browser.post_form(
        server.signin_url,
        {"username": "alice", "password": PASSWORD, "remember": "on"},
        headers={"Origin": server.origin, "Referer": server.origin + "/"},
    )
    sid, sign = browser.cookie("sessionid"), browser.cookie("sessionid_sign")
    assert sid is not None
    auth, clock = fake_auth(server, wall, Credentials(session_id=sid, session_id_sign=sign))
    first = auth.token_info()
    assert first.source == "cookie" and first.plan == "pro"
    clock.advance(14_400 - 200)
    wall.now += 14_400 - 200
    second = auth.token_info()
    assert second.value != first.value and second.expires_at == wall.now + 14_400
    assert http_count(server, "GET /") == 2
    assert http_count(server, "POST /accounts/signin/") == 1  # the browser's only


def test_fake_server_password_renewal_uses_the_captured_cookie(fake: tuple[Any, Wall]) -> None:
    """After a password sign-in, renewal goes through the session cookie, not the password."""
    server, wall = fake
    auth, clock = fake_auth(server, wall, Credentials(username="alice", password=PASSWORD))
    first = auth.token()
    clock.advance(14_400 - 100)
    wall.now += 14_400 - 100
    assert auth.token() != first
    assert http_count(server, "POST /accounts/signin/") == 1
    assert http_count(server, "GET /") == 1


def test_fake_server_expired_given_token(fake: tuple[Any, Wall]) -> None:
    """An expired token issued by the fake server raises TokenExpiredError, no I/O."""
    server, wall = fake
    token = server.issue_token("alice", lifetime=-1)
    auth, _ = fake_auth(server, wall, Credentials(token=token))
    with pytest.raises(TokenExpiredError):
        auth.token()
    assert sum(server.stats().http_requests.values()) == 0


# -- property: renewal timing, with an in-memory transport --------------------------------------


class MemoryHttp(HttpClient):
    """An HttpClient answering sign-in and the home page from memory (fast property tests)."""

    def __init__(self, clock: FakeClock, lifetime: float) -> None:
        super().__init__()
        self.clock, self.lifetime = clock, lifetime
        self.calls = 0

    def fork(self) -> HttpClient:
        return self

    def cookie(self, name: str) -> str | None:
        return "sid-" + name

    def _token(self) -> str:
        self.calls += 1
        wall = START + self.clock()
        return make_jwt({"iat": wall, "exp": wall + self.lifetime, "n": self.calls})

    def post_form(self, url: str, fields: Any, **kw: Any) -> Any:
        from tvadapter._http import HttpResponse

        body = json.dumps({"error": "", "user": {"auth_token": self._token()}}).encode()
        return HttpResponse(200, url, {"Content-Type": "application/json"}, body)

    def get(self, url: str, **kw: Any) -> Any:
        from tvadapter._http import HttpResponse

        body = f'<script>{{"auth_token":"{self._token()}"}}</script>'.encode()
        return HttpResponse(200, url, {"Content-Type": "text/html"}, body)


@given(
    advances=st.lists(st.floats(0, 6_000), min_size=1, max_size=40),
    margin=st.sampled_from([0.0, 60.0, 300.0, 1_000.0]),
)
def test_renewal_keeps_the_margin_with_minimal_sign_ins(
    advances: list[float], margin: float
) -> None:
    """Every token returned has >= margin left, and a sign-in happens only when one is due."""
    clock = FakeClock(0.0)
    http = MemoryHttp(clock, lifetime=14_400.0)
    auth = Authenticator(
        Credentials(username="alice", password=PASSWORD),
        config=NetworkConfig(),
        http=http,
        refresh_margin=margin,
        clock=clock,
        wall_clock=lambda: START + clock(),
    )
    renew_at: float | None = None
    expected = 0
    for step in advances:
        clock.advance(step)
        if renew_at is None or clock() >= renew_at:
            expected += 1
            renew_at = clock() + 14_400.0 - margin
        info = auth.token_info()
        assert info.expires_at is not None
        assert info.expires_at - (START + clock()) >= margin - 1.0  # JWT times are whole seconds
        assert auth.sign_ins == expected == http.calls
