"""``FakeTradingView``: the fake server's public object (lifecycle, truth, counters, faults)."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import logging
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tvadapter.protocol import Bar

from . import _replies as R
from ._catalogue import Catalogue, Instrument, default_catalogue
from ._config import TRADINGVIEW_ORIGIN, ConnectionRecord, FakeServerConfig, ServerStats
from ._connection import Connection
from ._data import Resolution, parse_resolution
from ._faults import ActiveFaults, Fault, RejectHandshake
from ._handler import RequestHandler
from ._http import HttpSide
from ._market import Market
from ._tokens import make_token

__all__ = ["FakeTradingView"]

logger = logging.getLogger(__name__)

WS_PATH = "/socket.io/websocket"
_START_TIMEOUT = 15.0


@dataclasses.dataclass
class _Record:
    attempt: int
    origin: str | None
    path: str
    status: int
    faults: tuple[str, ...] = ()
    auth: str = "none"
    close_code: int | None = None
    close_reason: str = ""
    requests: int = 0
    heartbeats_sent: int = 0
    heartbeats_echoed: int = 0


class FakeTradingView:
    """A protocol-faithful fake TradingView server on 127.0.0.1 (see the package docstring).

    Thread-safety: every public method may be called from any thread. The WebSocket side runs on
    its own asyncio loop in one background thread, the HTTP side in another (plus one short-lived
    thread per HTTP request); :meth:`stop` ends and joins them all.
    """

    def __init__(
        self,
        config: FakeServerConfig | None = None,
        *,
        catalogue: Catalogue | None = None,
        wall_clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        if config is None:
            config = FakeServerConfig(**options)
        elif options:
            config = dataclasses.replace(config, **options)
        self.config = config
        self.catalogue = catalogue if catalogue is not None else default_catalogue()
        self._wall = wall_clock
        anchor = int(config.data_end if config.data_end is not None else wall_clock())
        self.market = Market(
            self.catalogue,
            anchor=anchor,
            intraday_depth=config.intraday_depth,
            history_depth=config.history_depth,
            updates_per_bar=config.updates_per_bar,
        )
        self._lock = threading.Lock()
        self._faults: tuple[Fault, ...] = tuple(config.faults)
        self._counters: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()
        self._http_requests: Counter[str] = Counter()
        self._rejections: Counter[int] = Counter()
        self._records: list[_Record] = []
        self._issued: set[str] = set()
        self._user_ids: dict[str, int] = {}
        # Loop-thread state.
        self._connections: dict[int, Connection] = {}
        self._pending: weakref.WeakKeyDictionary[ServerConnection, tuple[int, ActiveFaults]] = (
            weakref.WeakKeyDictionary()
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._ws_port: int | None = None
        self._http = HttpSide(
            config,
            self.catalogue,
            issue_token=self._issue_for_user,
            user_id=self._user_id,
            on_request=self._on_http,
        )
        self._http_started = False

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeTradingView:
        """Start both sides; returns once they listen. Raises RuntimeError if already started."""
        if self._thread is not None:
            raise RuntimeError("FakeTradingView is already started")
        self._http.start()
        self._http_started = True
        self._ready.clear()
        self._thread = threading.Thread(target=self._run_loop, name="fake-tv-ws", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT) or self._startup_error is not None:
            error = self._startup_error
            self.stop()
            raise RuntimeError("the fake TradingView server did not start") from error
        logger.info("fake TradingView listening on %s and %s", self.ws_url, self.http_url)
        return self

    def stop(self) -> None:
        """Close every connection, stop both sides and join their threads. Idempotent."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is not None:
            if loop is not None and event is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
                    loop.call_soon_threadsafe(event.set)
            thread.join(timeout=30)
            self._thread = None
        if self._http_started:
            self._http.stop()
            self._http_started = False

    def __enter__(self) -> FakeTradingView:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.ws_url if self._ws_port is not None else "not started"
        return f"<FakeTradingView {where}>"

    # -- addresses ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The WebSocket port."""
        if self._ws_port is None:
            raise RuntimeError("the server is not started")
        return self._ws_port

    @property
    def http_port(self) -> int:
        """The HTTP port."""
        return self._http.port

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>/socket.io/websocket``."""
        return f"ws://{self.config.host}:{self.port}{WS_PATH}"

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<http_port>`` (no trailing slash)."""
        return f"http://{self.config.host}:{self.http_port}"

    @property
    def search_url(self) -> str:
        """The symbol search v3 endpoint."""
        return f"{self.http_url}/symbol_search/v3/"

    @property
    def legacy_search_url(self) -> str:
        """The legacy (broken) symbol search endpoint."""
        return f"{self.http_url}/symbol_search/"

    @property
    def signin_url(self) -> str:
        """The password sign-in endpoint."""
        return f"{self.http_url}/accounts/signin/"

    @property
    def totp_url(self) -> str:
        """The two-factor (TOTP) endpoint."""
        return f"{self.http_url}/accounts/two-factor/signin/totp/"

    @property
    def homepage_url(self) -> str:
        """The homepage that carries ``"auth_token"`` for a signed-in session cookie."""
        return f"{self.http_url}/"

    origin = TRADINGVIEW_ORIGIN

    # -- faults -------------------------------------------------------------------------------
    @property
    def faults(self) -> tuple[Fault, ...]:
        """The faults in force for new connections."""
        with self._lock:
            return self._faults

    def set_faults(self, *faults: Fault) -> None:
        """Replace the faults; they apply to connection attempts made from now on."""
        if not all(isinstance(f, Fault) for f in faults):
            raise TypeError("set_faults takes Fault objects")
        with self._lock:
            self._faults = tuple(faults)

    def add_fault(self, fault: Fault) -> None:
        """Add one fault for connection attempts made from now on."""
        if not isinstance(fault, Fault):
            raise TypeError("add_fault takes a Fault object")
        with self._lock:
            self._faults = (*self._faults, fault)

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.set_faults()

    # -- ground truth -------------------------------------------------------------------------
    def instrument(self, symbol: str) -> Instrument:
        """The catalogue entry for ``"EX:SYM"``; KeyError when unknown."""
        inst = self.catalogue.get(symbol.upper())
        if inst is None:
            raise KeyError(symbol)
        return inst

    def symbols(self) -> list[str]:
        """Every ``"EX:SYM"`` the server knows."""
        return self.catalogue.names()

    def _series(self, symbol: str, resolution: str) -> tuple[Instrument, Resolution]:
        res = parse_resolution(resolution)
        if res is None:
            raise ValueError(f"resolution {resolution!r} is not valid")
        return self.instrument(symbol), res

    def history_depth(self, symbol: str, resolution: str, *, session: str = "regular") -> int:
        """How many closed bars exist for ``symbol`` at ``resolution`` right now."""
        inst, res = self._series(symbol, resolution)
        timeline = self.market.timeline(inst, res, extended=session == "extended")
        return self.market.closed_end(timeline)

    def bars(
        self,
        symbol: str,
        resolution: str,
        n: int | None = None,
        *,
        start: float | None = None,
        end: float | None = None,
        session: str = "regular",
    ) -> list[Bar]:
        """The closed bars the server holds, oldest first (exactly the values it serves).

        ``n``: only the newest ``n``; ``start`` / ``end``: only bars whose open time is inside
        (inclusive). ``index`` runs 0..len-1. Caps are not applied: a client limited to 5,000
        bars gets the newest 5,000 of these. In live mode the forming bar is not included (see
        :meth:`forming_bar`).
        """
        inst, res = self._series(symbol, resolution)
        timeline = self.market.timeline(inst, res, extended=session == "extended")
        end_pos = self.market.closed_end(timeline)
        lo = 0
        hi = end_pos
        if start is not None or end is not None:
            times = timeline.slice(0, end_pos)
            if start is not None:
                lo = bisect.bisect_left(times, start)
            if end is not None:
                hi = bisect.bisect_right(times, end)
        if n is not None:
            if n < 0:
                raise ValueError("n must be >= 0")
            lo = max(lo, hi - n)
        return self.market.bars(inst, timeline, lo, max(lo, hi), base=lo)

    def forming_bar(self, symbol: str, resolution: str, *, session: str = "regular") -> Bar:
        """The live forming bar as it stands now (index 0)."""
        inst, res = self._series(symbol, resolution)
        timeline = self.market.timeline(inst, res, extended=session == "extended")
        pos = self.market.closed_end(timeline)
        return self.market.bars(inst, timeline, pos, pos + 1, base=pos, forming=pos)[0]

    def bar_cap(self, plan: str | None = None) -> int:
        """Bars per series for ``plan`` (``None``: anonymous)."""
        return self.config.cap_for(plan)

    # -- live clock ---------------------------------------------------------------------------
    @property
    def tick(self) -> int:
        """Live bars closed since start-up (each timeline gained that many bars)."""
        return self.market.clock[0]

    def step(self) -> bool:
        """One live update (forming-bar ``du`` to every subscriber); True when a bar closed."""
        return bool(self._call_in_loop(self._live_step()))

    def advance(self, bars: int = 1) -> None:
        """Close ``bars`` live bars now (``updates_per_bar`` steps each), sending the ``du``s."""
        if bars < 0:
            raise ValueError("bars must be >= 0")
        for _ in range(bars * self.config.updates_per_bar):
            self.step()

    async def _live_step(self) -> bool:
        closed = self.market.step()
        for conn in list(self._connections.values()):
            if not conn.closing:
                conn.enqueue(conn.handler.live_update(closed))
        return closed

    async def _ticker(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            await self._live_step()

    # -- tokens -------------------------------------------------------------------------------
    def _user_id(self, username: str) -> int:
        with self._lock:
            if username not in self._user_ids:
                self._user_ids[username] = 1_000_000 + len(self._user_ids) + 1
            return self._user_ids[username]

    def issue_token(
        self,
        username: str = "alice",
        *,
        lifetime: float | None = None,
        plan: str | None = None,
        issued_at: float | None = None,
    ) -> str:
        """A token as the server's sign-in issues it (``lifetime`` < 0 gives an expired one)."""
        if plan is None:
            plan = self.config.user_plans.get(username, "")
        token = make_token(
            user_id=self._user_id(username),
            iat=self._wall() if issued_at is None else issued_at,
            lifetime=self.config.token_lifetime if lifetime is None else lifetime,
            plan=plan,
        )
        with self._lock:
            self._issued.add(token)
        return token

    def _issue_for_user(self, username: str) -> str:
        return self.issue_token(username)

    def _is_issued(self, token: str) -> bool:
        with self._lock:
            return token in self._issued

    # -- counters -----------------------------------------------------------------------------
    def stats(self) -> ServerStats:
        """A consistent snapshot of every counter."""
        with self._lock:
            c = self._counters
            return ServerStats(
                connection_attempts=c["connection_attempts"],
                handshakes_accepted=c["handshakes_accepted"],
                handshakes_rejected=c["handshakes_rejected"],
                rejections=dict(self._rejections),
                open_connections=c["open_connections"],
                messages_received=c["messages_received"],
                requests=dict(self._requests),
                heartbeats_sent=c["heartbeats_sent"],
                heartbeat_echoes=c["heartbeat_echoes"],
                missed_heartbeat_closes=c["missed_heartbeat_closes"],
                bars_served=c["bars_served"],
                series_rounds=self._requests["create_series"]
                + self._requests["modify_series"]
                + self._requests["request_more_data"],
                http_requests=dict(self._http_requests),
            )

    @property
    def connection_attempts(self) -> int:
        """WebSocket upgrade requests received (accepted or not)."""
        return self.stats().connection_attempts

    @property
    def handshakes_rejected(self) -> int:
        """Upgrades answered with an HTTP error status."""
        return self.stats().handshakes_rejected

    @property
    def open_connections(self) -> int:
        """Connections open right now."""
        return self.stats().open_connections

    @property
    def requests(self) -> dict[str, int]:
        """Client packets received, by method (heartbeat echoes excluded)."""
        return dict(self.stats().requests)

    def counter(self, name: str) -> int:
        """One raw counter (``malformed_sent``, ``messages_withheld``, ``unexpected_echoes``...)."""
        with self._lock:
            return self._counters[name]

    def connection_log(self) -> list[ConnectionRecord]:
        """One record per connection attempt, in order."""
        with self._lock:
            return [ConnectionRecord(**dataclasses.asdict(r)) for r in self._records]

    def wait_for(
        self,
        predicate: Callable[[FakeTradingView], bool],
        timeout: float = 5.0,
        interval: float = 0.01,
    ) -> bool:
        """Poll ``predicate(self)`` until true or ``timeout`` seconds pass; its last value."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def drop_connections(self, code: int = 1006) -> int:
        """Close every open connection (1006 abort, 1005, or a close code); returns how many."""
        return int(self._call_in_loop(self._drop_all(code)))

    async def _drop_all(self, code: int) -> int:
        conns = [c for c in self._connections.values() if not c.closing]
        await asyncio.gather(*(c.close(code, "server drop") for c in conns))
        return len(conns)

    # ServerHooks implementation (called on the loop thread).
    def count(self, name: str, amount: int = 1) -> None:
        """Add to a counter (connection hook)."""
        with self._lock:
            self._counters[name] += amount

    def count_request(self, attempt: int, method: str) -> None:
        """Record one client request (connection hook)."""
        with self._lock:
            self._requests[method] += 1
            self._records[attempt - 1].requests += 1

    def connection_closed(self, attempt: int, code: int | None, reason: str) -> None:
        """Record how a connection ended (connection hook)."""
        with self._lock:
            record = self._records[attempt - 1]
            if record.close_code is None and not record.close_reason:
                record.close_code = code
                record.close_reason = reason

    def record_heartbeat(self, attempt: int, *, echoed: bool) -> None:
        """Record a heartbeat sent or echoed (connection hook)."""
        with self._lock:
            if echoed:
                self._counters["heartbeat_echoes"] += 1
                self._records[attempt - 1].heartbeats_echoed += 1
            else:
                self._counters["heartbeats_sent"] += 1
                self._records[attempt - 1].heartbeats_sent += 1

    def record_auth(self, attempt: int, auth: str) -> None:
        """Record a connection's auth state (connection hook)."""
        with self._lock:
            self._records[attempt - 1].auth = auth

    def _on_http(self, what: str) -> None:
        with self._lock:
            self._http_requests[what] += 1

    def _on_bars(self, amount: int) -> None:
        self.count("bars_served", amount)

    # -- event loop ---------------------------------------------------------------------------
    def _call_in_loop(self, coro: Any) -> Any:
        loop = self._loop
        if loop is None or self._thread is None:
            coro.close()
            raise RuntimeError("the server is not started")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    def _run_loop(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start(); never leaves the thread silently
            self._startup_error = exc
            logger.exception("fake TradingView loop failed")
        finally:
            self._ready.set()
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                # Join the resolver threads create_server used: no thread outlives stop().
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        config = self.config
        server: Server = await serve(
            self._handle,
            config.host,
            config.port,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            close_timeout=config.close_timeout,
            max_size=2**24,
            server_header="tv",
        )
        ticker: asyncio.Task[None] | None = None
        try:
            self._ws_port = int(server.sockets[0].getsockname()[1])
            if config.live and config.bar_seconds is not None:
                period = config.bar_seconds / config.updates_per_bar
                ticker = asyncio.create_task(self._ticker(period), name="fake-tv-ticker")
            self._ready.set()
            await self._stop_event.wait()
        finally:
            if ticker is not None:
                ticker.cancel()
            server.close(close_connections=False)
            await self._shutdown_connections()
            await server.wait_closed()

    async def _shutdown_connections(self) -> None:
        conns = list(self._connections.values())
        closes = [asyncio.create_task(c.close(1001, "server shutdown")) for c in conns]
        if closes:
            _done, pending = await asyncio.wait(closes, timeout=0.5)
            for task in pending:
                task.cancel()
        for conn in conns:
            conn.ws.transport.abort()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        headers: Headers = request.headers
        origins = headers.get_all("Origin")
        with self._lock:
            self._counters["connection_attempts"] += 1
            attempt = self._counters["connection_attempts"]
            faults = self._faults
            open_now = self._counters["open_connections"]
        active = ActiveFaults.select(faults, attempt)
        status = 101
        response: Response | None = None
        reject = next(
            (f for f in faults if isinstance(f, RejectHandshake) and f.applies_to(attempt)), None
        )
        allowed = self.config.allowed_origins
        path = request.path.split("?", 1)[0]
        if path != WS_PATH:
            status = 404
            response = connection.respond(404, "Not Found\n")
        elif reject is not None:
            status = reject.status
            response = connection.respond(reject.status, f"Rejected by fault ({status})\n")
            if reject.retry_after is not None:
                response.headers["Retry-After"] = f"{reject.retry_after:g}"
        elif allowed is not None and (len(origins) != 1 or origins[0] not in allowed):
            status = 403
            response = connection.respond(403, "Forbidden\n")
        elif self.config.max_connections is not None and open_now >= self.config.max_connections:
            status = 429
            response = connection.respond(429, "Too Many Requests\n")
        record = _Record(
            attempt=attempt,
            origin=origins[0] if origins else None,
            path=request.path,
            status=status,
            faults=tuple(active.names())
            if response is None
            else ("RejectHandshake",)
            if reject is not None
            else (),
        )
        with self._lock:
            self._records.append(record)
            if response is not None:
                self._counters["handshakes_rejected"] += 1
                self._rejections[status] += 1
        if response is None:
            self._pending[connection] = (attempt, active)
        return response

    async def _handle(self, ws: ServerConnection) -> None:
        attempt, active = self._pending.pop(ws)
        with self._lock:
            self._counters["handshakes_accepted"] += 1
            self._counters["open_connections"] += 1
        now = self._wall()
        handler = RequestHandler(
            self.config,
            self.market,
            now=self._wall,
            issued_tokens=self._is_issued,
            on_bars=self._on_bars,
            node=f"fake-charts-free-{attempt % 9 + 1}-series-{attempt:x}-1",
        )
        hello = R.hello_info(
            session_id=f"<0.{attempt}.{int(now) % 10_000}>_fake-charts-{attempt}-tvbs-1",
            now=now,
            extra=self.config.hello_extra,
        )
        conn = Connection(
            ws,
            attempt=attempt,
            config=self.config,
            faults=active,
            handler=handler,
            hooks=self,
            hello=hello,
        )
        self._connections[attempt] = conn
        try:
            await conn.run()
        finally:
            self._connections.pop(attempt, None)
            with self._lock:
                self._counters["open_connections"] -= 1
