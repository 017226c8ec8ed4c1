"""Signing in to TradingView and keeping a valid auth token (PROTOCOL.md §16).

The WebSocket carries the token in-band (``set_auth_token``); this module's job is to have a
valid one ready.  Four ways in, chosen by the :class:`Credentials` given:

* **nothing** -- anonymous: the token ``"unauthorized_user_token"``, no I/O;
* **username + password** -- ``POST signin_url`` (form fields ``username``, ``password``,
  ``remember=on``; ``Origin``/``Referer`` as the browser sends them).  The answer's
  ``user.auth_token`` is the token, and the ``sessionid``/``sessionid_sign`` cookies it sets are
  kept (in memory only) so that later refreshes use the cookie flow and do not provoke a captcha.
  ``recaptcha_required`` -> :class:`CaptchaRequiredError`; ``2FA_required`` -> the TOTP step
  when a code (or a callable returning one) was given, else :class:`TwoFactorRequiredError`;
  ``rate_limit`` -> :class:`RateLimitedError`; a wrong password ->
  :class:`InvalidCredentialsError`;
* **a session cookie** (``sessionid`` [+ ``sessionid_sign``]) -- ``GET home_url`` with the
  cookie, following up to 5 redirects, and read ``"auth_token":"..."`` from the page.  This is
  the recommended way for unattended use: it never meets a captcha;
* **a ready token** -- used as given; it cannot be renewed unless other means are given too.

Nothing here falls back to anonymous access: a sign-in that fails raises.

**Expiry.**  TradingView's tokens are JWTs valid 4 hours.  The payload is decoded (base64url;
the signature is not checked -- we are not the audience) for ``exp``, ``iat``, ``plan`` and
``max_connections``.  :meth:`Authenticator.token` signs in again (session cookie first, then
password) once fewer than ``refresh_margin`` seconds of validity remain.

**Which clock.**  Expiry is tracked on the monotonic ``clock``: when a token arrives, the time
it has left is turned into a monotonic deadline once.  For a token we just obtained that time is
``exp - iat`` (the server's own statement of the lifetime, immune to a wrong local clock: a host
whose clock is hours off would otherwise see every fresh token as expired and sign in in a loop,
which is exactly what gets an account captcha-blocked).  For a token handed to us ready-made we
cannot know when it was issued, so its ``exp`` (epoch seconds, wall-clock time) is compared with
``wall_clock()`` -- :func:`time.time` by default -- once, on arrival: that single comparison is
why ``wall_clock`` exists.  Everything else (expiry checks, the sign-in cool-down) is monotonic.

**Secrets** (password, session cookie, tokens, TOTP codes) never appear in a repr, ``str``, log
line or exception message; server texts quoted in messages are scrubbed of them too.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from resilience import _clock

from ._http import HttpClient, HttpResponse, parse_retry_after, safe_url
from .config import NetworkConfig
from .errors import (
    AuthenticationError,
    CaptchaRequiredError,
    HttpStatusError,
    InvalidCredentialsError,
    MalformedPayloadError,
    RateLimitedError,
    TokenExpiredError,
    TvError,
    TwoFactorRequiredError,
)

__all__ = [
    "ANONYMOUS_TOKEN",
    "DEFAULT_LOGIN_COOLDOWN",
    "DEFAULT_REFRESH_MARGIN",
    "Authenticator",
    "Credentials",
    "TokenInfo",
    "decode_jwt_claims",
]

logger = logging.getLogger(__name__)

#: The token TradingView's front end uses when nobody is signed in.
ANONYMOUS_TOKEN = "unauthorized_user_token"
#: Sign in again when fewer than this many seconds of the token's validity remain.
DEFAULT_REFRESH_MARGIN = 300.0
#: After a sign-in is refused, do not ask the server again for this many seconds.
DEFAULT_LOGIN_COOLDOWN = 60.0

_CAPTCHA_ADVICE = (
    "TradingView asks for a captcha before it accepts this password sign-in "
    "(it does so after a few sign-ins in a short time or from a new address). "
    "Sign in once in a browser and pass its 'sessionid' (and 'sessionid_sign') cookie as "
    "Credentials(session_id=...): the cookie flow never meets a captcha"
)
_TWO_FACTOR_ADVICE = (
    "this account uses two-factor authentication: pass totp= (the current 6-digit code, or "
    "better a callable returning it) or sign in with a session cookie (session_id=...)"
)
_TOKEN_RE = re.compile(r'"auth_token"\s*:\s*"([^"\\]+)"')
_SERVER_TEXT_LIMIT = 200


# -- values -----------------------------------------------------------------------------------


def _check_text(name: str, value: object, *, header: bool = False) -> None:
    """Type and emptiness checks; ``header`` values (cookies, tokens) also get a charset check.

    Messages name the parameter, never its value (which may be a secret).
    """
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty (pass None to leave it out)")
    if header and any(ch in value for ch in ";,\r\n\x00 \t"):
        raise ValueError(f"{name} contains characters not allowed in a cookie or token")


@dataclass(frozen=True, repr=False)
class Credentials:
    """How to sign in: nothing (anonymous), a password, a session cookie, a token, or several.

    ``username`` + ``password`` (+ ``totp``: a TOTP code, or a zero-argument callable that
    returns the current one) sign in with the password; ``session_id`` (+ ``session_id_sign``)
    use the browser session cookie; ``token`` is a ready auth token.  Several may be given: the
    token is used first, and renewals use the cookie, then the password.  A half-given pair
    (a username without a password...) is a ``ValueError``, never a silent anonymous session.

    The repr and ``str`` show the username and which secrets are set, never their values.
    Immutable; safe to share between threads.
    """

    username: str | None = None
    password: str | None = None
    session_id: str | None = None
    session_id_sign: str | None = None
    token: str | None = None
    totp: str | Callable[[], str] | None = None

    def __post_init__(self) -> None:
        _check_text("username", self.username)
        _check_text("password", self.password)
        _check_text("session_id", self.session_id, header=True)
        _check_text("session_id_sign", self.session_id_sign, header=True)
        _check_text("token", self.token, header=True)
        if self.totp is not None and not callable(self.totp):
            _check_text("totp", self.totp)
        if (self.username is None) != (self.password is None):
            given, missing = (
                ("username", "password") if self.password is None else ("password", "username")
            )
            raise ValueError(f"{missing} is required with a {given} (a password sign-in)")
        if self.session_id_sign is not None and self.session_id is None:
            raise ValueError("session_id is required when session_id_sign is given")
        if self.totp is not None and self.password is None:
            raise ValueError("totp only applies to a password sign-in (username and password)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """Credentials from ``TV_USERNAME``/``TV_PASSWORD``, ``TV_SESSION_ID``/
        ``TV_SESSION_ID_SIGN`` and ``TV_AUTH_TOKEN`` (``os.environ`` by default).

        Unset or empty variables are left out; none set gives anonymous credentials.  A bad
        combination raises ``ValueError`` naming the variable, never echoing a value.
        """
        env = os.environ if environ is None else environ
        names = {
            "username": "TV_USERNAME",
            "password": "TV_PASSWORD",
            "session_id": "TV_SESSION_ID",
            "session_id_sign": "TV_SESSION_ID_SIGN",
            "token": "TV_AUTH_TOKEN",
        }
        values = {field: env.get(var) or None for field, var in names.items()}
        try:
            return cls(**values)
        except ValueError as exc:
            message = str(exc)
            for field_name, variable in names.items():
                message = re.sub(rf"\b{field_name}\b", variable, message)
            raise ValueError(message) from None

    @property
    def is_anonymous(self) -> bool:
        """True when nothing was given: the session will be anonymous."""
        return self.password is None and self.session_id is None and self.token is None

    @property
    def can_sign_in(self) -> bool:
        """True when a new token can be obtained (a password or a session cookie is known)."""
        return self.password is not None or self.session_id is not None

    def secrets(self) -> tuple[str, ...]:
        """Every secret value held (for scrubbing server texts); do not log the result."""
        values = (self.password, self.session_id, self.session_id_sign, self.token)
        extra = (self.totp,) if isinstance(self.totp, str) else ()
        return tuple(v for v in (*values, *extra) if v)

    def __repr__(self) -> str:
        shown = []
        if self.username is not None:
            shown.append(f"username={self.username!r}")
        for name in ("password", "session_id", "session_id_sign", "token", "totp"):
            if getattr(self, name) is not None:
                shown.append(f"{name}=<redacted>")
        return f"Credentials({', '.join(shown)})"

    __str__ = __repr__


def decode_jwt_claims(token: str) -> dict[str, Any] | None:
    """The JSON payload of a JWT, decoded without checking the signature; None if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[1]:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _epoch_text(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return "unknown"


@dataclass(frozen=True, repr=False)
class TokenInfo:
    """An auth token and what its JWT payload says (no signature check).

    ``source`` is how it was obtained: ``"anonymous"``, ``"password"``, ``"cookie"`` or
    ``"given"``.  ``expires_at``/``issued_at`` are epoch seconds (None when the token is not a
    JWT or lacks the claim); ``plan`` is TradingView's plan name (``""`` for the free plan);
    ``max_connections`` the plan's WebSocket connection cap.  The repr never shows ``value``.
    Immutable; safe to share.
    """

    value: str
    source: str
    expires_at: float | None = None
    issued_at: float | None = None
    plan: str | None = None
    max_connections: int | None = None
    user_id: int | None = None

    @classmethod
    def parse(cls, value: str, source: str) -> TokenInfo:
        """Build from a token string, reading the JWT claims when there are any."""
        claims = decode_jwt_claims(value) or {}
        plan = claims.get("plan")
        max_conn = claims.get("max_connections")
        user_id = claims.get("user_id")
        return cls(
            value=value,
            source=source,
            expires_at=_number(claims.get("exp")),
            issued_at=_number(claims.get("iat")),
            plan=plan if isinstance(plan, str) else None,
            max_connections=max_conn
            if isinstance(max_conn, int) and not isinstance(max_conn, bool)
            else None,
            user_id=user_id if isinstance(user_id, int) and not isinstance(user_id, bool) else None,
        )

    @property
    def is_anonymous(self) -> bool:
        """True for the anonymous token."""
        return self.value == ANONYMOUS_TOKEN

    def __repr__(self) -> str:
        return (
            f"TokenInfo(source={self.source!r}, plan={self.plan!r}, "
            f"max_connections={self.max_connections!r}, "
            f"expires_at={_epoch_text(self.expires_at)!r})"
        )

    __str__ = __repr__


_ANONYMOUS = TokenInfo(value=ANONYMOUS_TOKEN, source="anonymous")


@dataclass(frozen=True)
class _Held:
    """The current token, when to renew it and when it stops working (``clock()`` seconds).

    Both times are None for a token without a known expiry (not a JWT): it is used until the
    server refuses it (:meth:`Authenticator.invalidate`).
    """

    info: TokenInfo = field(repr=False)
    refresh_at: float | None
    valid_until: float | None
    rejected: bool = False

    def state(self, now: float) -> tuple[bool, bool]:
        """(fresh, usable) at ``now``: fresh needs no renewal; usable has not expired."""
        if self.rejected:
            return False, False
        fresh = self.refresh_at is None or now < self.refresh_at
        usable = self.valid_until is None or now < self.valid_until
        return fresh and usable, usable

    def left(self, now: float) -> float:
        return float("inf") if self.valid_until is None else self.valid_until - now


@dataclass(frozen=True)
class _Session:
    """Session cookies (secrets): kept in memory to renew tokens without a password."""

    session_id: str = field(repr=False)
    session_id_sign: str | None = field(repr=False)


@dataclass(frozen=True)
class _Failure:
    """The last refused sign-in, to answer quickly during the cool-down."""

    at: float
    error: TvError = field(repr=False)
    attempt: int


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` (server-supplied) shortened and with any secret value replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    text = " ".join(text.split())
    if len(text) > _SERVER_TEXT_LIMIT:
        text = text[: _SERVER_TEXT_LIMIT - 3] + "..."
    return text


def _copy_error(error: TvError, note: str) -> TvError:
    """A new exception of ``error``'s type with ``note`` appended (for other callers)."""
    message = f"{error} ({note})"
    if isinstance(error, RateLimitedError):
        return RateLimitedError(message, retry_after=error.retry_after)
    if isinstance(error, HttpStatusError):
        return HttpStatusError(message, status=error.status, retry_after=error.retry_after)
    try:
        copy = type(error)(message)
    except TypeError:
        copy = AuthenticationError(message)
    return copy


# -- the authenticator ------------------------------------------------------------------------


class Authenticator:
    """Holds the auth token for one set of :class:`Credentials` and renews it before expiry.

    Call :meth:`token` whenever a token is needed (before each ``set_auth_token``): it returns
    the current one, or signs in first when there is none yet or fewer than ``refresh_margin``
    seconds of validity remain.  No I/O happens in the constructor; call :meth:`token` once at
    start-up to fail fast on bad credentials.  When the server refuses a token (a
    ``protocol_error "bad auth token"``, or a heartbeat-only session), call :meth:`invalidate`
    so the next :meth:`token` signs in again.

    A refused sign-in (captcha, 2FA, wrong password, rate limit) is remembered for
    ``login_cooldown`` seconds (at least the server's ``retry_after``): calls in that window
    raise the same kind of error without asking the server again, because repeated sign-ins
    are what makes TradingView demand a captcha.

    Thread-safety: safe to call from any number of threads.  Only one sign-in runs at a time
    (single flight); while it runs, other callers get the current token if it is still valid,
    or wait for the outcome.  No lock is held during network I/O or while calling the ``totp``
    callable.
    """

    def __init__(
        self,
        credentials: Credentials | None = None,
        *,
        config: NetworkConfig | None = None,
        http: HttpClient | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        login_cooldown: float = DEFAULT_LOGIN_COOLDOWN,
        multipart: bool = True,
        clock: Callable[[], float] = _clock.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if credentials is None:
            credentials = Credentials()
        if not isinstance(credentials, Credentials):
            raise TypeError(f"credentials must be a Credentials, got {type(credentials).__name__}")
        for name, value in (("refresh_margin", refresh_margin), ("login_cooldown", login_cooldown)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        self._credentials = credentials
        self._config = config if config is not None else NetworkConfig()
        self._http = http if http is not None else HttpClient.from_config(self._config)
        self.refresh_margin = float(refresh_margin)
        self.login_cooldown = float(login_cooldown)
        self.multipart = multipart
        self._clock = clock
        self._wall_clock = wall_clock
        self._cond = threading.Condition(threading.Lock())
        self._held: _Held | None = None
        self._session: _Session | None = (
            _Session(credentials.session_id, credentials.session_id_sign)
            if credentials.session_id is not None
            else None
        )
        self._refreshing = False
        self._attempts = 0  # sign-in attempts finished (successful or not)
        self._failure: _Failure | None = None
        self._sign_ins = 0
        if credentials.token is not None:
            self._held = self._hold(TokenInfo.parse(credentials.token, "given"), fresh=False)

    # -- public surface ------------------------------------------------------------------------

    @property
    def credentials(self) -> Credentials:
        """The credentials this authenticator signs in with (their repr is redacted)."""
        return self._credentials

    @property
    def is_anonymous(self) -> bool:
        """True when no credentials were given: :meth:`token` is the anonymous token."""
        return self._credentials.is_anonymous

    @property
    def current(self) -> TokenInfo | None:
        """The token held now, without signing in (None before the first sign-in)."""
        if self.is_anonymous:
            return _ANONYMOUS
        held = self._held
        return None if held is None else held.info

    @property
    def plan(self) -> str | None:
        """The plan of the current token (``""`` = free; None if anonymous or not known yet)."""
        info = self.current
        return None if info is None else info.plan

    @property
    def max_connections(self) -> int | None:
        """The current token's connection cap (None if anonymous or not known yet)."""
        info = self.current
        return None if info is None else info.max_connections

    @property
    def expires_at(self) -> float | None:
        """Epoch seconds at which the current token expires, per its ``exp`` claim."""
        info = self.current
        return None if info is None else info.expires_at

    @property
    def sign_ins(self) -> int:
        """How many sign-ins succeeded (password or cookie flow) since construction."""
        return self._sign_ins

    def token(self) -> str:
        """A valid auth token, signing in first if needed (see the class docstring)."""
        return self.token_info().value

    def token_info(self) -> TokenInfo:
        """Like :meth:`token`, with the token's claims."""
        return self._obtain(force=False)

    def refresh(self) -> TokenInfo:
        """Sign in again now, whatever the current token's age (cool-down still applies)."""
        return self._obtain(force=True)

    def invalidate(self, token: str | None = None) -> None:
        """Mark the current token as refused by the server, so :meth:`token` renews it.

        With ``token``, only that token is marked (a caller holding an old token cannot
        discard a newer one another thread already obtained).  A ready-made token that cannot
        be renewed then makes :meth:`token` raise :class:`TokenExpiredError`.
        """
        if self.is_anonymous:
            return
        with self._cond:
            held = self._held
            if held is None or (token is not None and token != held.info.value):
                return
            self._held = _Held(held.info, held.refresh_at, held.valid_until, rejected=True)
        logger.info("auth token marked as refused (source %s)", held.info.source)

    def __repr__(self) -> str:
        if self.is_anonymous:
            return "Authenticator(anonymous)"
        info = self.current
        state = "no token yet" if info is None else repr(info)
        return f"Authenticator({self._credentials!r}, {state})"

    __str__ = __repr__

    # -- token bookkeeping ---------------------------------------------------------------------

    def _hold(self, info: TokenInfo, *, fresh: bool) -> _Held:
        """Turn ``info``'s expiry into monotonic deadlines (see "Which clock" above).

        For a token just obtained, the renewal margin is capped at half its lifetime, so a
        short-lived token cannot make every call sign in again.
        """
        if info.expires_at is None:
            return _Held(info, None, None)
        margin = self.refresh_margin
        if fresh and info.issued_at is not None and info.expires_at > info.issued_at:
            left = info.expires_at - info.issued_at
            margin = min(margin, left / 2)
            skew = self._wall_clock() - info.issued_at
            if abs(skew) > 300:
                logger.warning(
                    "local clock differs from TradingView's by %.0f s; "
                    "token expiry is tracked from its lifetime instead",
                    skew,
                )
        else:
            left = info.expires_at - self._wall_clock()
            if fresh:
                margin = min(margin, max(left, 0.0) / 2)
        now = self._clock()
        return _Held(info, now + left - margin, now + left)

    def _obtain(self, *, force: bool) -> TokenInfo:
        if self.is_anonymous:
            return _ANONYMOUS
        with self._cond:
            waited_for: int | None = None
            while True:
                now = self._clock()
                held = self._held
                fresh, usable = (False, False) if held is None else held.state(now)
                if held is not None and fresh and not force:
                    return held.info
                if waited_for is not None and self._attempts > waited_for:
                    # The sign-in this thread waited for has finished: share its outcome.
                    failure = self._failure
                    if failure is not None and failure.attempt > waited_for:
                        raise _copy_error(failure.error, "sign-in failed in another thread")
                    if held is not None and usable:
                        return held.info
                if not self._credentials.can_sign_in:
                    if held is not None and usable:
                        if not force:
                            return held.info
                        raise AuthenticationError(
                            "cannot renew a ready-made token: no password or session cookie given"
                        )
                    raise self._expired_error(held)
                if self._refreshing:
                    if held is not None and usable and not force:
                        return held.info
                    waited_for = self._attempts
                    self._cond.wait()
                    continue
                failure = self._failure
                if failure is not None:
                    since = now - failure.at
                    hold_off = self.login_cooldown
                    retry_after = getattr(failure.error, "retry_after", None)
                    if isinstance(retry_after, (int, float)):
                        hold_off = max(hold_off, float(retry_after))
                    if since < hold_off:
                        if held is not None and usable and not force:
                            return held.info
                        raise _copy_error(
                            failure.error,
                            f"not asking the server again for {hold_off - since:.0f} s",
                        )
                self._refreshing = True
                session = self._session
                break
        return self._sign_in_and_publish(session, force=force)

    def _expired_error(self, held: _Held | None) -> TokenExpiredError:
        if held is not None and held.rejected:
            return TokenExpiredError(
                "the server refused the auth token and it cannot be renewed: "
                "give a session cookie or a password so it can be"
            )
        expiry = None if held is None else held.info.expires_at
        return TokenExpiredError(
            f"the auth token expired (exp {_epoch_text(expiry)}) and cannot be renewed: "
            "give a session cookie or a password so it can be"
        )

    def _sign_in_and_publish(self, session: _Session | None, *, force: bool) -> TokenInfo:
        """Sign in (no lock held), then publish the outcome and wake the waiters."""
        try:
            info, new_session = self._sign_in(session)
        except TvError as exc:
            definitive = isinstance(exc, (AuthenticationError, RateLimitedError))
            with self._cond:
                self._refreshing = False
                self._attempts += 1
                self._failure = _Failure(self._clock(), exc, self._attempts)
                if not definitive:
                    # Transient (network) failures are the caller's to retry: no cool-down,
                    # but waiting threads still learn the outcome of this attempt.
                    self._failure = _Failure(float("-inf"), exc, self._attempts)
                held = self._held
                now = self._clock()
                usable = held is not None and held.state(now)[1]
                self._cond.notify_all()
            if held is not None and usable and not force:
                logger.warning(
                    "auth token renewal failed (%s); keeping the current token, valid %.0f s more",
                    type(exc).__name__,
                    held.left(now),
                )
                return held.info
            raise
        except BaseException:
            with self._cond:
                self._refreshing = False
                self._attempts += 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._held = self._hold(info, fresh=True)
            if new_session is not None:
                self._session = new_session
            self._refreshing = False
            self._attempts += 1
            self._failure = None
            self._sign_ins += 1
            self._cond.notify_all()
        logger.info(
            "signed in (%s flow): plan %r, token valid until %s",
            info.source,
            info.plan,
            _epoch_text(info.expires_at),
        )
        return info

    # -- the flows (network I/O; called without the lock) --------------------------------------

    def _secrets(self, session: _Session | None) -> list[str]:
        values = list(self._credentials.secrets())
        if session is not None:
            values += [v for v in (session.session_id, session.session_id_sign) if v]
        held = self._held
        if held is not None:
            values.append(held.info.value)
        return values

    def _sign_in(self, session: _Session | None) -> tuple[TokenInfo, _Session | None]:
        creds = self._credentials
        if session is not None:
            try:
                info, rotated = self._cookie_flow(session)
            except AuthenticationError as exc:
                if creds.password is None:
                    raise
                logger.warning(
                    "session cookie not accepted (%s); signing in with the password",
                    type(exc).__name__,
                )
            else:
                return info, rotated
        return self._password_flow()

    def _headers(self) -> dict[str, str]:
        origin = self._config.origin.rstrip("/")
        return {
            "Origin": origin,
            "Referer": origin + "/",
            "Accept": "application/json, text/plain, */*",
            "X-Requested-With": "XMLHttpRequest",
        }

    def _cookie_flow(
        self, session: _Session, client: HttpClient | None = None
    ) -> tuple[TokenInfo, _Session]:
        """GET the home page with the session cookie and read the token from it."""
        home = self._config.home_url
        if client is None:
            client = self._http.fork()
            client.set_cookie("sessionid", session.session_id, home)
            if session.session_id_sign is not None:
                client.set_cookie("sessionid_sign", session.session_id_sign, home)
        logger.debug("fetching an auth token from %s with the session cookie", safe_url(home))
        try:
            response = client.get(home, headers={"Accept": "text/html,*/*"})
        except HttpStatusError as exc:
            if exc.status in (401, 403):
                raise AuthenticationError(
                    f"session cookie not accepted: HTTP {exc.status} from {safe_url(home)}"
                ) from exc
            raise
        match = _TOKEN_RE.search(response.text())
        token = match.group(1) if match else None
        if token is None or token == ANONYMOUS_TOKEN:
            raise AuthenticationError(
                f"session cookie not accepted: {safe_url(response.url)} carried no auth_token "
                "(sign in again in a browser and copy a fresh 'sessionid' cookie)"
            )
        rotated = _Session(
            client.cookie("sessionid") or session.session_id,
            client.cookie("sessionid_sign") or session.session_id_sign,
        )
        return TokenInfo.parse(token, "cookie"), rotated

    def _password_flow(self) -> tuple[TokenInfo, _Session | None]:
        creds = self._credentials
        assert creds.username is not None and creds.password is not None
        config = self._config
        client = self._http.fork()
        fields = {"username": creds.username, "password": creds.password, "remember": "on"}
        logger.debug("signing in at %s", safe_url(config.signin_url))
        response = client.post_form(
            config.signin_url,
            fields,
            headers=self._headers(),
            multipart=self.multipart,
            raise_for_status=False,
        )
        data = self._signin_answer(client, response, step="sign-in")
        if _is_two_factor(data):
            data = self._second_factor(client)
        return self._token_from_answer(client, data)

    def _second_factor(self, client: HttpClient) -> Mapping[str, Any]:
        totp = self._credentials.totp
        if totp is None:
            raise TwoFactorRequiredError(_TWO_FACTOR_ADVICE)
        code = totp() if callable(totp) else totp
        if not isinstance(code, str) or not code.strip():
            raise TwoFactorRequiredError("the totp callable returned no code")
        url = self._config.totp_url
        logger.debug("sending the two-factor code to %s", safe_url(url))
        response = client.post_form(
            url,
            {"code": code.strip()},
            headers=self._headers(),
            multipart=self.multipart,
            raise_for_status=False,
        )
        data = self._signin_answer(client, response, step="two-factor step", secret=code)
        if _is_two_factor(data):
            raise TwoFactorRequiredError("the two-factor code was not accepted")
        return data

    def _signin_answer(
        self,
        client: HttpClient,
        response: HttpResponse,
        *,
        step: str,
        secret: str | None = None,
    ) -> Mapping[str, Any]:
        """Parse a sign-in (or TOTP) answer; raise the typed error it describes."""
        if response.status == 429 or response.status >= 500:
            client.raise_for_status(response)
        try:
            data = response.json()
        except MalformedPayloadError as exc:
            client.raise_for_status(response)  # an error status explains it better
            raise AuthenticationError(f"the {step} answer is not JSON") from exc
        if not isinstance(data, dict):
            client.raise_for_status(response)
            raise AuthenticationError(f"the {step} answer is not a JSON object")
        code = str(data.get("code") or "")
        error = str(data.get("error") or "")
        secrets = [*self._secrets(None), *([secret] if secret else [])]
        text = _scrub(error, secrets)
        if "recaptcha_required" in (code, error):
            raise CaptchaRequiredError(_CAPTCHA_ADVICE)
        if _is_two_factor(data):
            return data
        if code == "rate_limit" or response.status == 429:
            raise RateLimitedError(
                f"TradingView refused the {step}: too many attempts ({text or code})",
                retry_after=parse_retry_after(
                    response.header("Retry-After"), wall_clock=self._wall_clock
                ),
            )
        if error or code or not 200 <= response.status < 300:
            if step == "two-factor step":
                raise TwoFactorRequiredError(
                    f"the two-factor code was not accepted: {text or code or response.status}"
                )
            if _looks_like_bad_password(code, error, response.status):
                raise InvalidCredentialsError(
                    f"TradingView refused the username or password: {text or code}"
                )
            raise AuthenticationError(
                f"TradingView refused the {step}: {text or 'no reason given'}"
                + (f" (code {_scrub(code, secrets)})" if code else "")
                + (f" (HTTP {response.status})" if response.status != 200 else "")
            )
        return data

    def _token_from_answer(
        self, client: HttpClient, data: Mapping[str, Any]
    ) -> tuple[TokenInfo, _Session | None]:
        """The token from a successful answer; else from the session cookies it set."""
        session_id = client.cookie("sessionid")
        session = (
            _Session(session_id, client.cookie("sessionid_sign"))
            if session_id is not None
            else None
        )
        user = data.get("user")
        token = user.get("auth_token") if isinstance(user, dict) else None
        if isinstance(token, str) and token and token != ANONYMOUS_TOKEN:
            return TokenInfo.parse(token, "password"), session
        if session is not None:
            # Newer answers may carry only the cookies: read the token from the home page.
            info, rotated = self._cookie_flow(session, client)
            return TokenInfo.parse(info.value, "password"), rotated
        raise AuthenticationError(
            "the sign-in answer carried neither an auth token nor a session cookie"
        )


def _is_two_factor(data: Mapping[str, Any]) -> bool:
    return "2FA_required" in (str(data.get("code") or ""), str(data.get("error") or ""))


def _looks_like_bad_password(code: str, error: str, status: int) -> bool:
    lowered = f"{code} {error}".lower()
    return status == 401 or any(
        word in lowered for word in ("invalid", "password", "credential", "incorrect", "wrong")
    )
