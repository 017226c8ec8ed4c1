"""A protocol-faithful fake TradingView server for tests, demos and your own code.

Real WebSocket (the ``websockets`` library) and HTTP servers on 127.0.0.1, speaking the protocol
of ``PROTOCOL.md`` with the same codec as the client (:mod:`tvadapter.protocol`).

Quick start::

    from tvadapter.testing import FakeTradingView, Drop, RejectHandshake, first

    with FakeTradingView(heartbeat_interval=0.2) as tv:
        tv.ws_url        # "ws://127.0.0.1:<port>/socket.io/websocket"
        tv.origin        # "https://www.tradingview.com" (the only Origin accepted by default)
        tv.search_url    # "http://127.0.0.1:<http_port>/symbol_search/v3/"
        tv.signin_url    # ".../accounts/signin/"
        tv.bars("NASDAQ:AAPL", "1D", 10)   # the exact bars the server serves (oldest first)

From a shell: ``python -m tvadapter.testing --port 8765 --latency 0.05`` (``--help`` lists the
fault flags); :mod:`tvadapter.testing.cli` exposes ``build_parser()``, ``add_arguments(parser)``
and ``run(args)`` for other command lines. In pytest: the ``fake_tv`` and ``fake_tv_factory``
fixtures of :mod:`tvadapter.testing.pytest_plugin` (``fake_tv`` takes its options from a
``@pytest.mark.fake_tv(...)`` marker).

Constructor: ``FakeTradingView(config=None, *, catalogue=None, wall_clock=time.time, **options)``
where ``options`` are the fields of :class:`FakeServerConfig` (all durations in seconds):

* ``host="127.0.0.1"``, ``port=0``, ``http_port=0`` (0: an ephemeral port);
* ``heartbeat_interval=10.0``: ``~h~1``, ``~h~2``... every that many seconds, per connection;
  ``heartbeat_timeout=None`` (= the interval): a client that has not echoed a heartbeat that long
  after it was sent is closed with ``heartbeat_close_code=1000`` (``enforce_heartbeats=False``
  disables the check);
* ``allowed_origins=("https://www.tradingview.com",)``: upgrades with another Origin, none, or
  two Origin headers get HTTP 403 (``None`` accepts any); ``max_connections=None``: more
  concurrent connections get HTTP 429;
* ``users={"alice": "secret"}``, ``user_plans={"alice": "pro_premium"}``, ``captcha_users``,
  ``twofa_users`` (frozensets of names), ``totp_code="123456"``, ``token_lifetime=14400``,
  ``strict_tokens=False`` (True: only tokens this server issued are valid);
* ``bar_caps``: bars per series by plan (default :data:`DEFAULT_BAR_CAPS`: anonymous and free
  5,000, ``pro`` 10,000, ``pro_premium`` 20,000, ``ultimate`` 40,000...). A load past the cap is
  cut silently: ``series_completed`` carries ``data_completed: "limit"``;
* ``intraday_depth=30000`` (bars of history for second/minute/hour resolutions),
  ``history_depth=None`` (an int for every series, or ``f(symbol, resolution) -> int | None``);
  daily and longer histories start at the symbol's listing date. When a load reaches the oldest
  bar, ``data_completed`` is ``"end"``;
* ``data_end=None``: epoch time of the newest bar (default: now at construction);
* ``live=False``, ``bar_seconds=None``, ``updates_per_bar=2``, ``serve_forming_bar=True``: see
  "Live mode";
* ``packing="round"`` (all packets answering one request in one message) or ``"split"`` (one
  packet per message); ``mix_heartbeats=True`` puts a heartbeat packet inside every message that
  carries a ``timescale_update``; ``extra_timescale_updates=True`` surrounds the bars of a round
  with an empty series update (``"s": []``) and a timescale-only update (``{}``), as captured
  real traffic does;
* ``login_required_exchanges=frozenset()``: anonymous series on these exchanges get no answer at
  all (the real server's "for mcx data, you need to log in" hang);
* ``faults=()``: see "Faults"; ``close_timeout=2.0``; ``hello_extra={}`` (more hello keys).

Heartbeat echoes are checked by the protocol core: echoing a heartbeat that was never sent, or
echoing one twice, is a protocol violation answered with ``protocol_error "wrong data"`` and a
close (as is any client message that does not frame or parse).

Protocol behaviour: the hello first (``session_id``, ``timestamp``, ``timestampMs``,
``release``, ``protocol: "json"``, ``javastudies``...); raw UTF-8 with UTF-16 lengths (some
descriptions hold Korean text, an emoji and the text ``~m~12~m~``: ``NASDAQ:TLDE``,
``NYSE:RKT``, ``KRX:005930``); ``set_auth_token``: ``unauthorized_user_token`` (anonymous: one
series per chart session, else ``critical_error "exceed limit of series in the session"``), a
JWT-shaped token (see :meth:`FakeTradingView.issue_token`), an expired token (a silent session:
nothing but heartbeats), anything else (``protocol_error "bad auth token"``, then a close);
``symbol_error "invalid symbol"``; ``series_error "custom_resolution"`` for seconds or
non-standard minute counts (``"1S"``, ``"188"``) without a paid plan; ``critical_error
"invalid parameters"`` / ``"invalid timezone"`` for misuse; ``create_series`` with ``count``
(or ``["bar_count", to, n]``) and an optional range ``"r,from:to"`` / preset; ``modify_series``
answered by a new round (a zero-bar round when the range is already loaded);
``request_more_data`` answered with older bars at negative indices until the history or the
cap runs out; quote sessions (``qsd`` snapshot, ``quote_completed``, an error ``qsd`` for
unknown symbols). Daily bars sit at the session open; indices have 5-element bars (no volume).

Ground truth (exactly what the server serves, thread-safe):

* ``tv.bars(symbol, resolution, n=None, *, start=None, end=None, session="regular")`` -> list of
  :class:`tvadapter.protocol.Bar` (``time`` epoch s as float, o/h/l/c, ``volume`` or ``None``,
  ``index`` 0..len-1), closed bars only, caps not applied;
* ``tv.history_depth(symbol, resolution)``, ``tv.bar_cap(plan=None)``,
  ``tv.forming_bar(symbol, resolution)``, ``tv.instrument(symbol)``, ``tv.symbols()``;
* counters: ``tv.stats()`` (a :class:`ServerStats` snapshot), ``tv.connection_attempts``,
  ``tv.handshakes_rejected``, ``tv.open_connections``, ``tv.requests`` (``{method: count}``),
  ``tv.counter(name)``; ``tv.connection_log()`` (one :class:`ConnectionRecord` per attempt:
  status, Origin, faults, auth, close code...); ``tv.wait_for(predicate, timeout=5.0)``;
* ``tv.issue_token(username="alice", *, lifetime=None, plan=None)`` (``lifetime=-1``: expired);
* ``tv.drop_connections(code=1006)`` closes every open connection now.

Live mode (``live=True``): a live clock closes one bar on *every* timeline per tick (times follow
each series' own grid). With ``bar_seconds=0.5`` a tick happens every 0.5 s (so a "1-minute" bar
closes every 0.5 s), with ``updates_per_bar`` forming-bar updates per tick; with
``bar_seconds=None`` the clock only moves when a test calls ``tv.advance(bars=1)`` or
``tv.step()`` (deterministic). Series loaded up to the newest bar get ``du`` packets: the forming
bar's partial values on each step, and on a close two bars: the closed bar's final values (index
k) and the new forming bar (index k+1). ``tv.tick`` counts closes; ``tv.bars(...)`` always returns
the closed bars as of now; with ``serve_forming_bar=True`` (default) a history load ends with the
forming bar (as the real server does). Quote sessions get ``qsd`` deltas on each step.

Faults (:mod:`._faults`; each takes ``attempts=`` to select connection attempts: ``None`` all,
an int, a container like ``{1, 2}`` or ``first(3)``, or a callable ``attempt -> bool``; attempts
count every upgrade request, 1-based). Set them with ``faults=(...)`` or at run time with
``tv.set_faults(...)`` / ``tv.add_fault(...)`` / ``tv.clear_faults()`` (new connections only):

* ``Latency(seconds=0.05, jitter=0.0)``: every outgoing message delivered that much later
  (pipelined, order kept);
* ``RejectHandshake(status=429, retry_after=None)``: the upgrade gets that HTTP status;
* ``Stall(after=0, after_heartbeats=None, heartbeats=False, hello=True)``: silence once
  ``after`` series packets (or ``after_heartbeats`` heartbeats) went out; optionally still
  heartbeats; ``hello=False``: not even the hello;
* ``Drop(after=1, code=1006, reason="")``: close right after the ``after``-th series packet
  (1006: TCP abort, no close frame; 1005: a close frame without status; else that close code);
* ``RequestRate(max_requests=20, window=1.0, code=1008)``: close a client sending more packets
  than that within ``window`` seconds;
* ``Malformed(kind="bad_length", after=0, close=False)``: one malformed message
  (:data:`MALFORMED_KINDS`: bad_length, no_prefix, non_ascii_digits, trailing_garbage, not_json,
  bad_shape, invalid_utf8, binary);
* ``HugeFrame(size=4_000_000)``: every ``timescale_update`` message padded (in its ``node``
  string) to at least ``size`` characters;
* ``SlowDrip(chunk=1024, delay=0.05, min_size=0, level="fragments")``: messages delivered
  ``chunk`` characters per WebSocket fragment (RFC 6455 continuation frames), ``delay`` apart;
  ``level="bytes"``: one frame written ``chunk`` bytes at a time (a slow TCP stream).

"Series packets" are ``series_loading``, ``symbol_resolved``, ``timescale_update``,
``series_timeframe``, ``series_completed``, ``series_error``, ``symbol_error`` and ``du``.

HTTP side (see :mod:`._http`): ``POST /accounts/signin/`` (form-urlencoded or multipart),
``POST /accounts/two-factor/signin/totp/``, ``GET /`` (``"auth_token":"<jwt>"`` for a signed-in
``sessionid`` cookie), ``GET /symbol_search/v3/`` (Origin/Referer enforced, paged with
``start``), ``GET /symbol_search/`` (the broken legacy endpoint: 403).
"""

from __future__ import annotations

from ._config import (
    DEFAULT_BAR_CAPS,
    TRADINGVIEW_ORIGIN,
    ConnectionRecord,
    FakeServerConfig,
    ServerStats,
)
from ._faults import (
    MALFORMED_KINDS,
    Drop,
    Fault,
    HugeFrame,
    Latency,
    Malformed,
    RejectHandshake,
    RequestRate,
    SlowDrip,
    Stall,
    first,
)
from ._server import FakeTradingView

__all__ = [
    "DEFAULT_BAR_CAPS",
    "MALFORMED_KINDS",
    "TRADINGVIEW_ORIGIN",
    "ConnectionRecord",
    "Drop",
    "FakeServerConfig",
    "FakeTradingView",
    "Fault",
    "HugeFrame",
    "Latency",
    "Malformed",
    "RejectHandshake",
    "RequestRate",
    "ServerStats",
    "SlowDrip",
    "Stall",
    "first",
]
