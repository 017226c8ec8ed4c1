"""The fake server's HTTP side: sign-in, the token-bearing homepage and symbol search v3.

Endpoints (PROTOCOL.md §16-§17), all on ``http://127.0.0.1:<http_port>``:

* ``POST /accounts/signin/`` (form-urlencoded or multipart): ``{"error": "", "user": {...,
  "auth_token": <jwt>}}`` with ``Set-Cookie`` ``sessionid``, ``sessionid_sign`` and ``device_t``;
  ``{"error": ..., "code": "recaptcha_required"}`` for captcha users; ``{"error": "2FA_required",
  "code": "2FA_required"}`` (and a pending ``sessionid`` cookie) for 2FA users; ``{"error":
  "Invalid username or password", "code": "invalid_credentials"}`` otherwise.
* ``POST /accounts/two-factor/signin/totp/`` with ``code`` and the pending cookie: the success
  answer, or ``{"error": "Invalid code", "code": "invalid_code"}``.
* ``GET /`` and ``GET /chart/``: HTML; with a signed-in ``sessionid`` cookie it contains
  ``"auth_token":"<jwt>"`` (a fresh token each time).
* ``GET /symbol_search/v3/``: 403 unless ``Origin: https://www.tradingview.com`` and a
  ``Referer`` under ``https://www.tradingview.com/``; else ``{"symbols_remaining": n,
  "symbols": [...]}``, 50 per page, paged with ``start``; ``text`` may carry an ``EX:`` prefix.
* ``GET /symbol_search/`` (the legacy endpoint): 403, as it has been since 2024-04.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._catalogue import Catalogue, Instrument
from ._config import TRADINGVIEW_ORIGIN, FakeServerConfig

__all__ = ["HttpSide", "search"]

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
_SEARCH_TYPES: Mapping[str, frozenset[str]] = {
    "stocks": frozenset({"stock"}),
    "stock": frozenset({"stock"}),
    "funds": frozenset({"fund"}),
    "futures": frozenset({"futures"}),
    "forex": frozenset({"forex"}),
    "crypto": frozenset({"spot", "swap"}),
    "index": frozenset({"index"}),
    "cfd": frozenset({"commodity", "cfd"}),
    "economic": frozenset({"economic"}),
}
_DISPLAY_EXCHANGE = {"CME_MINI": "CME", "CBOT_MINI": "CBOT"}


def _highlight(text: str, needle: str, enabled: bool) -> str:
    if not enabled or not needle:
        return text
    at = text.upper().find(needle)
    if at < 0:
        return text
    end = at + len(needle)
    return f"{text[:at]}<em>{text[at:end]}</em>{text[end:]}"


def _entry(inst: Instrument, needle: str, hl: bool) -> dict[str, Any]:
    exchange = _DISPLAY_EXCHANGE.get(inst.exchange, inst.exchange)
    symbol = inst.root if inst.root is not None else inst.symbol
    entry: dict[str, Any] = {
        "symbol": _highlight(symbol, needle, hl),
        "description": _highlight(inst.description, needle, hl),
        "type": inst.type,
        "exchange": exchange,
        "currency_code": inst.currency,
        "provider_id": "fake",
        "source2": {"id": inst.exchange, "name": inst.exchange, "description": inst.exchange},
        "source_id": inst.exchange,
        "country": inst.country,
        "typespecs": list(inst.typespecs),
    }
    if exchange != inst.exchange:
        entry["prefix"] = inst.exchange
    if inst.isin:
        entry["isin"] = inst.isin
    if inst.root is not None:
        entry["description"] = _highlight(inst.description.split(" (")[0], needle, hl)
        entry["contracts"] = []
    return entry


def search(
    catalogue: Catalogue,
    text: str,
    *,
    exchange: str = "",
    search_type: str = "",
    start: int = 0,
    hl: bool = False,
) -> dict[str, Any]:
    """The v3 answer for one query (what ``GET /symbol_search/v3/`` returns)."""
    needle = text.strip().upper()
    if ":" in needle:
        prefix, needle = needle.split(":", 1)
        exchange = exchange or prefix
    exchange = exchange.upper()
    kinds = _SEARCH_TYPES.get(search_type.lower()) if search_type else None
    ranked: list[tuple[int, str, Instrument]] = []
    futures_roots: dict[tuple[str, str], dict[str, Any]] = {}
    for inst in catalogue:
        if (
            exchange
            and inst.exchange != exchange
            and (_DISPLAY_EXCHANGE.get(inst.exchange) != exchange)
        ):
            continue
        if kinds is not None and inst.type not in kinds:
            continue
        symbol = inst.root if inst.root is not None else inst.symbol
        if needle and not (
            symbol.startswith(needle)
            or inst.symbol.startswith(needle)
            or needle in inst.description.upper()
        ):
            continue
        if needle in (symbol, inst.symbol):
            rank = 0
        elif symbol.startswith(needle):
            rank = 1
        else:
            rank = 2
        ranked.append((rank, symbol, inst))
    ranked.sort(key=lambda r: (r[0], r[1], r[2].exchange))
    entries: list[dict[str, Any]] = []
    for _rank, _symbol, inst in ranked:
        if inst.root is not None:
            key = (inst.exchange, inst.root)
            root_entry = futures_roots.get(key)
            if root_entry is None:
                root_entry = _entry(inst, needle, hl)
                futures_roots[key] = root_entry
                entries.append(root_entry)
            root_entry["contracts"].append(
                {
                    "symbol": inst.symbol,
                    "description": inst.description,
                    "type": "futures",
                    "typespecs": list(inst.typespecs),
                }
            )
            continue
        entries.append(_entry(inst, needle, hl))
    start = max(0, start)
    page = entries[start : start + PAGE_SIZE]
    return {"symbols_remaining": max(0, len(entries) - start - len(page)), "symbols": page}


class _Accounts:
    """Sign-in state: users, pending 2FA cookies and signed-in sessions. Thread-safe (a lock)."""

    def __init__(self, config: FakeServerConfig, issue: Callable[[str], str]) -> None:
        self.config = config
        self.issue = issue
        self._lock = threading.Lock()
        self._sessions: dict[str, str] = {}  # sessionid -> username
        self._pending: dict[str, str] = {}  # 2FA sessionid -> username

    def new_session(self, username: str) -> str:
        sid = secrets.token_hex(16)
        with self._lock:
            self._sessions[sid] = username
        return sid

    def new_pending(self, username: str) -> str:
        sid = secrets.token_hex(16)
        with self._lock:
            self._pending[sid] = username
        return sid

    def user_of(self, sessionid: str | None) -> str | None:
        if not sessionid:
            return None
        with self._lock:
            return self._sessions.get(sessionid)

    def take_pending(self, sessionid: str | None) -> str | None:
        if not sessionid:
            return None
        with self._lock:
            return self._pending.get(sessionid)

    def finish_pending(self, sessionid: str) -> None:
        with self._lock:
            self._pending.pop(sessionid, None)


def _user_json(username: str, token: str, plan: str, user_id: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": username,
        "first_name": "",
        "last_name": "",
        "reputation": 0.0,
        "following": 0,
        "followers": 0,
        "notification_count": {"following": 0, "user": 0},
        "session_hash": secrets.token_hex(8),
        "private_channel": secrets.token_hex(8),
        "auth_token": token,
        "date_joined": "2020-01-01T00:00:00+00:00",
        "pro_plan": plan,
        "badges": [],
        "is_pro": bool(plan),
    }


class HttpSide:
    """A threaded stdlib HTTP server on 127.0.0.1 serving the endpoints above.

    ``start()`` returns once listening; ``stop()`` shuts it down and joins its thread (request
    threads are joined too: responses close the connection, HTTP/1.0 style). Thread-safe.
    """

    def __init__(
        self,
        config: FakeServerConfig,
        catalogue: Catalogue,
        *,
        issue_token: Callable[[str], str],
        user_id: Callable[[str], int],
        on_request: Callable[[str], None],
    ) -> None:
        self.config = config
        self.catalogue = catalogue
        self.accounts = _Accounts(config, issue_token)
        self.user_id = user_id
        self.on_request = on_request
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve in a background thread."""
        side = self

        class Handler(_Handler):
            owner = side

        server = ThreadingHTTPServer((self.config.host, self.config.http_port), Handler)
        server.daemon_threads = False
        server.block_on_close = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-tv-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and join every thread."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None


class _Handler(BaseHTTPRequestHandler):
    owner: HttpSide
    server_version = "tv"
    sys_version = ""
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake http: %s", format % args)

    # -- plumbing -----------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        cookies: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (cookies or {}).items():
            self.send_header("Set-Cookie", f"{name}={value}; Path=/; HttpOnly")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, cookies: Mapping[str, str] | None = None) -> None:
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", cookies)

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode("utf-8"), "text/plain; charset=utf-8")

    def _cookie(self, name: str) -> str | None:
        header = self.headers.get("Cookie")
        if not header:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except Exception:  # http.cookies raises CookieError for garbage
            return None
        morsel = jar.get(name)
        return morsel.value if morsel is not None else None

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            parser = email.parser.BytesParser(policy=email.policy.HTTP)
            msg = parser.parsebytes(b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + raw)
            out: dict[str, str] = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if isinstance(name, str):
                    payload = part.get_payload(decode=True)
                    if isinstance(payload, bytes):
                        out[name] = payload.decode("utf-8", "replace")
            return out
        parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    # -- routes -------------------------------------------------------------------------------
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.owner.on_request(f"GET {url.path}")
        if url.path == "/symbol_search/v3/":
            self._search(url.query)
        elif url.path == "/symbol_search/":
            self._text(HTTPStatus.FORBIDDEN, "Forbidden")
        elif url.path in ("/", "/chart/"):
            self._homepage()
        else:
            self._text(HTTPStatus.NOT_FOUND, "Not found")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        self.owner.on_request(f"POST {url.path}")
        if url.path == "/accounts/signin/":
            self._signin()
        elif url.path == "/accounts/two-factor/signin/totp/":
            self._totp()
        else:
            self._text(HTTPStatus.NOT_FOUND, "Not found")

    def _search(self, query: str) -> None:
        origin = self.headers.get_all("Origin") or []
        referer = self.headers.get("Referer", "")
        if origin != [TRADINGVIEW_ORIGIN] or not referer.startswith(TRADINGVIEW_ORIGIN + "/"):
            self._text(HTTPStatus.FORBIDDEN, "Forbidden")
            return
        params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        try:
            start = int(params.get("start", "0") or 0)
        except ValueError:
            self._json({"error": "bad start"}, HTTPStatus.BAD_REQUEST)
            return
        result = search(
            self.owner.catalogue,
            params.get("text", ""),
            exchange=params.get("exchange", ""),
            search_type=params.get("search_type", ""),
            start=start,
            hl=params.get("hl", "0") == "1",
        )
        self._json(result)

    def _success(self, username: str) -> None:
        owner = self.owner
        token = owner.accounts.issue(username)
        sid = owner.accounts.new_session(username)
        plan = owner.config.user_plans.get(username, "")
        user = _user_json(username, token, plan, owner.user_id(username))
        cookies = {
            "sessionid": sid,
            "sessionid_sign": "v3:" + secrets.token_urlsafe(24),
            "device_t": secrets.token_urlsafe(12),
        }
        self._json({"error": "", "user": user}, cookies=cookies)

    def _signin(self) -> None:
        form = self._form()
        config = self.owner.config
        username = form.get("username", "")
        password = form.get("password", "")
        if username in config.captcha_users:
            self._json(
                {
                    "error": "Please confirm that you are not a robot by clicking the captcha box.",
                    "code": "recaptcha_required",
                }
            )
            return
        if config.users.get(username) is None or config.users[username] != password:
            self._json({"error": "Invalid username or password", "code": "invalid_credentials"})
            return
        if username in config.twofa_users:
            pending = self.owner.accounts.new_pending(username)
            self._json(
                {"error": "2FA_required", "code": "2FA_required"}, cookies={"sessionid": pending}
            )
            return
        self._success(username)

    def _totp(self) -> None:
        form = self._form()
        pending = self._cookie("sessionid")
        username = self.owner.accounts.take_pending(pending)
        if username is None or pending is None:
            self._json(
                {"error": "Please sign in first", "code": "not_authenticated"}, HTTPStatus.FORBIDDEN
            )
            return
        if form.get("code", "") != self.owner.config.totp_code:
            self._json({"error": "Invalid code", "code": "invalid_code"})
            return
        self.owner.accounts.finish_pending(pending)
        self._success(username)

    def _homepage(self) -> None:
        username = self.owner.accounts.user_of(self._cookie("sessionid"))
        if username is None:
            init = '{"user":{"is_authenticated":false}}'
        else:
            token = self.owner.accounts.issue(username)
            init = json.dumps(
                {"user": {"username": username, "is_authenticated": True, "auth_token": token}},
                separators=(",", ":"),
            )
        html = (
            "<!DOCTYPE html><html><head><title>TradingView (fake)</title></head><body>"
            f"<script>window.initData = {init};</script></body></html>"
        )
        self._send(HTTPStatus.OK, html.encode("utf-8"), "text/html; charset=utf-8")
