"""Fake server HTTP side: sign-in (form, multipart, captcha, 2FA), homepage token, search v3."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from http.cookies import SimpleCookie

import pytest

from tvadapter.protocol import SeriesCompleted

ORIGIN = "https://www.tradingview.com"
HEADERS = {"Origin": ORIGIN, "Referer": ORIGIN + "/"}


def post(url, fields, *, multipart=False, cookie=None):
    """POST a form; returns (status, json body, cookies dict)."""
    headers = {"Referer": ORIGIN}
    if multipart:
        boundary = "----fakeboundary42"
        parts = []
        for name, value in fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            )
        body = ("".join(parts) + f"--{boundary}--\r\n").encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        headers["X-Requested-With"] = "XMLHttpRequest"
    else:
        body = urllib.parse.urlencode(fields).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if cookie:
        headers["Cookie"] = cookie
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, raw, set_cookies = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, set_cookies = exc.code, exc.read(), exc.headers
    jar = SimpleCookie()
    for header in set_cookies.get_all("Set-Cookie") or []:
        jar.load(header)
    return status, json.loads(raw), {k: m.value for k, m in jar.items()}


def get(url, headers=None):
    """GET; returns (status, body text)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def claims_of(token):
    _header, body, signature = token.split(".")
    assert signature
    pad = "=" * (-len(body) % 4)
    return json.loads(base64.urlsafe_b64decode(body + pad))


@pytest.fixture
def accounts(server):
    return server(
        users={"alice": "secret", "carol": "pw2", "robot": "x"},
        user_plans={"alice": "pro_premium"},
        captcha_users=frozenset({"robot"}),
        twofa_users=frozenset({"carol"}),
        totp_code="654321",
    )


@pytest.mark.parametrize("multipart", [False, True], ids=["urlencoded", "multipart"])
def test_signin_success_returns_a_jwt_and_cookies(accounts, multipart):
    """A good password: user.auth_token (JWT with a 4-hour exp) and session cookies."""
    tv = accounts
    fields = {"username": "alice", "password": "secret", "remember": "on"}
    status, body, cookies = post(tv.signin_url, fields, multipart=multipart)
    assert status == 200
    assert body["error"] == ""
    token = body["user"]["auth_token"]
    claims = claims_of(token)
    assert claims["exp"] - claims["iat"] == 14_400
    assert claims["plan"] == "pro_premium"
    assert claims["max_connections"] == 50
    assert {"sessionid", "sessionid_sign", "device_t"} <= set(cookies)
    assert body["user"]["username"] == "alice"


def test_wrong_password(accounts):
    """A wrong password gets an error JSON without a user."""
    status, body, cookies = post(accounts.signin_url, {"username": "alice", "password": "no"})
    assert status == 200
    assert "user" not in body
    assert body["code"] == "invalid_credentials"
    assert "sessionid" not in cookies


def test_captcha_required(accounts):
    """Captcha users get recaptcha_required."""
    _, body, _ = post(accounts.signin_url, {"username": "robot", "password": "x"})
    assert body["code"] == "recaptcha_required"
    assert "robot" in body["error"]


def test_two_factor_flow(accounts):
    """2FA users get 2FA_required, then the TOTP endpoint with the code signs them in."""
    tv = accounts
    _, body, cookies = post(tv.signin_url, {"username": "carol", "password": "pw2"})
    assert body["error"] == "2FA_required"
    pending = f"sessionid={cookies['sessionid']}"
    _, wrong, _ = post(tv.totp_url, {"code": "000000"}, cookie=pending)
    assert wrong["code"] == "invalid_code"
    _, right, cookies2 = post(tv.totp_url, {"code": "654321"}, cookie=pending)
    assert right["error"] == ""
    assert claims_of(right["user"]["auth_token"])["user_id"] > 0
    assert "sessionid" in cookies2
    status, _, _ = post(tv.totp_url, {"code": "654321"}, cookie="sessionid=unknown")
    assert status == 403


def test_homepage_carries_the_token_for_a_session_cookie(accounts, peer):
    """GET / with the sessionid cookie holds "auth_token":"<jwt>", a token the WS accepts."""
    tv = accounts
    _, _, cookies = post(tv.signin_url, {"username": "alice", "password": "secret"})
    cookie = f"sessionid={cookies['sessionid']}; sessionid_sign={cookies['sessionid_sign']}"
    status, html = get(tv.homepage_url, {"Cookie": cookie})
    assert status == 200
    match = re.search(r'"auth_token":"(.*?)"', html)
    assert match is not None
    token = match.group(1)
    assert claims_of(token)["plan"] == "pro_premium"
    status, anonymous = get(tv.homepage_url)
    assert status == 200 and '"auth_token"' not in anonymous
    p = peer(tv)
    p.open_chart("NASDAQ:AAPL", token=token)
    p.send("create_series", "cs_test", "s1", "s1", "sym_1", "1D", 5)
    p.send("create_series", "cs_test", "s2", "s2", "sym_1", "1W", 5)  # allowed with a token
    p.until(lambda e: isinstance(e, SeriesCompleted) and e.series_id == "s2")
    assert tv.connection_log()[0].auth == "token"
    assert tv.stats().http_requests["POST /accounts/signin/"] == 1


def test_search_requires_origin_and_referer(server):
    """symbol_search/v3 answers 403 without Origin and Referer from tradingview.com."""
    tv = server()
    url = tv.search_url + "?text=AAPL"
    assert get(url)[0] == 403
    assert get(url, {"Origin": ORIGIN})[0] == 403
    assert get(url, {"Origin": "https://evil.example", "Referer": ORIGIN + "/"})[0] == 403
    status, body = get(url, HEADERS)
    assert status == 200
    result = json.loads(body)
    assert set(result) == {"symbols_remaining", "symbols"}
    first = result["symbols"][0]
    assert (first["symbol"], first["exchange"]) == ("AAPL", "NASDAQ")
    for key in ("description", "type", "currency_code", "source2", "country", "typespecs"):
        assert key in first


def test_search_paging_covers_everything_once(server):
    """Paging with start while symbols_remaining > 0 visits every hit exactly once."""
    tv = server()
    seen = []
    start = 0
    while True:
        query = urllib.parse.urlencode({"text": "", "exchange": "NSE", "start": start})
        result = json.loads(get(tv.search_url + "?" + query, HEADERS)[1])
        seen.extend(f"{s['exchange']}:{s['symbol']}:{s['type']}" for s in result["symbols"])
        if result["symbols_remaining"] == 0:
            break
        start += len(result["symbols"])
    assert len(seen) == len(set(seen)) > 50
    assert all(name.startswith("NSE:") for name in seen)


def test_search_prefix_highlight_and_futures(server):
    """'EX:' prefixes filter, hl=1 adds <em>, futures roots list their continuous contracts."""
    tv = server()
    q = urllib.parse.urlencode({"text": "BINANCE:BTCUSDT", "hl": "1"})
    result = json.loads(get(tv.search_url + "?" + q, HEADERS)[1])
    assert all(s["exchange"] == "BINANCE" for s in result["symbols"])
    assert result["symbols"][0]["symbol"] == "<em>BTCUSDT</em>"
    q = urllib.parse.urlencode({"text": "ES", "search_type": "futures"})
    result = json.loads(get(tv.search_url + "?" + q, HEADERS)[1])
    es = next(s for s in result["symbols"] if s["symbol"] == "ES")
    assert es["prefix"] == "CME_MINI" and es["exchange"] == "CME"
    assert [c["symbol"] for c in es["contracts"]] == ["ES1!", "ES2!"]


def test_legacy_search_is_broken(server):
    """The legacy /symbol_search/ endpoint fails, as it has since 2024."""
    tv = server()
    status, _ = get(tv.legacy_search_url + "?text=AAPL&exchange=NASDAQ", HEADERS)
    assert status == 403


def test_unknown_paths_are_404(server):
    """Anything else is 404."""
    tv = server()
    assert get(tv.http_url + "/nothing")[0] == 404
