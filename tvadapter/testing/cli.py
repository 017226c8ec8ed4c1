"""Command line of the fake server: ``python -m tvadapter.testing [options]``.

The ``tvadapter`` CLI reuses it for ``tvadapter fake-server``: call :func:`add_arguments` on its
sub-parser and :func:`run` with the parsed namespace.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TextIO

from ._config import DEFAULT_BAR_CAPS, FakeServerConfig
from ._faults import (
    MALFORMED_KINDS,
    AttemptSelector,
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

__all__ = ["add_arguments", "build_parser", "config_from_args", "main", "parse_attempts", "run"]


def parse_attempts(text: str) -> AttemptSelector:
    """``"all"`` -> None; ``"3"`` -> 3; ``"1-3"`` -> range(1, 4); ``"1,4,6"`` -> {1, 4, 6}."""
    text = text.strip()
    if text in ("", "all"):
        return None
    try:
        if "," in text:
            return frozenset(int(x) for x in text.split(","))
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            return range(lo, hi + 1)
        return int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad attempts selector {text!r}") from exc


def _pair(text: str, what: str) -> tuple[str, str]:
    if ":" not in text:
        raise argparse.ArgumentTypeError(f"{what} must look like A:B, got {text!r}")
    a, b = text.split(":", 1)
    return a, b


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fake server's options to ``parser``."""
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    net.add_argument(
        "--port", type=int, default=0, help="WebSocket port (default 0: an ephemeral port)"
    )
    net.add_argument("--http-port", type=int, default=0, help="HTTP port (0: ephemeral)")
    net.add_argument("--any-origin", action="store_true", help="accept any Origin header")
    net.add_argument("--max-connections", type=int, default=None, help="HTTP 429 beyond this")

    proto = parser.add_argument_group("protocol")
    proto.add_argument("--heartbeat-interval", type=float, default=10.0, metavar="S")
    proto.add_argument("--heartbeat-timeout", type=float, default=None, metavar="S")
    proto.add_argument(
        "--no-heartbeat-check",
        action="store_true",
        help="never close clients that do not echo heartbeats",
    )
    proto.add_argument("--packing", choices=("round", "split"), default="round")
    proto.add_argument("--mix-heartbeats", action="store_true")
    proto.add_argument(
        "--anonymous-cap",
        type=int,
        default=DEFAULT_BAR_CAPS["anonymous"],
        metavar="N",
        help="bars per series for anonymous sessions",
    )
    proto.add_argument("--intraday-depth", type=int, default=30_000, metavar="N")
    proto.add_argument(
        "--history-depth",
        type=int,
        default=None,
        metavar="N",
        help="bars of history for every series",
    )
    proto.add_argument("--live", action="store_true", help="stream du updates")
    proto.add_argument(
        "--bar-seconds",
        type=float,
        default=None,
        metavar="S",
        help="live: close a bar every S seconds",
    )
    proto.add_argument("--updates-per-bar", type=int, default=2, metavar="N")

    auth = parser.add_argument_group("accounts")
    auth.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD")
    auth.add_argument("--plan", action="append", default=[], metavar="NAME:PLAN")
    auth.add_argument("--captcha-user", action="append", default=[], metavar="NAME")
    auth.add_argument("--twofa-user", action="append", default=[], metavar="NAME")
    auth.add_argument("--totp-code", default="123456")

    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--fault-attempts",
        type=parse_attempts,
        default=None,
        metavar="SEL",
        help="attempts the faults below apply to: all, 3, 1-3, 1,4",
    )
    faults.add_argument("--latency", type=float, default=None, metavar="S")
    faults.add_argument(
        "--reject",
        default=None,
        metavar="STATUS[:K]",
        help="answer the first K upgrades (all without K) with STATUS",
    )
    faults.add_argument("--stall-after", type=int, default=None, metavar="N")
    faults.add_argument(
        "--stall-heartbeats", action="store_true", help="keep sending heartbeats while stalled"
    )
    faults.add_argument(
        "--drop-after",
        default=None,
        metavar="N[:CODE]",
        help="close after N series packets (CODE: 1006 abort, 1005...)",
    )
    faults.add_argument(
        "--rate-limit",
        default=None,
        metavar="R[/WINDOW]",
        help="close clients sending more than R packets per WINDOW s",
    )
    faults.add_argument(
        "--malformed",
        default=None,
        metavar="KIND[:AFTER]",
        help=f"one malformed message: {', '.join(MALFORMED_KINDS)}",
    )
    faults.add_argument("--huge-frame", type=int, default=None, metavar="CHARS")
    faults.add_argument("--slow-drip", default=None, metavar="CHUNK:DELAY")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m tvadapter.testing``."""
    parser = argparse.ArgumentParser(
        prog="python -m tvadapter.testing",
        description="Run the fake TradingView server (WebSocket + HTTP) on 127.0.0.1.",
    )
    add_arguments(parser)
    return parser


def _faults(args: argparse.Namespace) -> list[Fault]:
    sel = args.fault_attempts
    out: list[Fault] = []
    if args.latency is not None:
        out.append(Latency(args.latency, attempts=sel))
    if args.reject is not None:
        status, _, k = args.reject.partition(":")
        out.append(RejectHandshake(int(status), attempts=first(int(k)) if k else None))
    if args.stall_after is not None:
        out.append(Stall(after=args.stall_after, heartbeats=args.stall_heartbeats, attempts=sel))
    if args.drop_after is not None:
        n, _, code = args.drop_after.partition(":")
        out.append(Drop(after=int(n), code=int(code) if code else 1006, attempts=sel))
    if args.rate_limit is not None:
        r, _, window = args.rate_limit.partition("/")
        out.append(RequestRate(int(r), float(window) if window else 1.0, attempts=sel))
    if args.malformed is not None:
        kind, _, after = args.malformed.partition(":")
        out.append(Malformed(kind, int(after) if after else 0, attempts=sel))
    if args.huge_frame is not None:
        out.append(HugeFrame(args.huge_frame, attempts=sel))
    if args.slow_drip is not None:
        chunk, delay = _pair(args.slow_drip, "--slow-drip")
        out.append(SlowDrip(int(chunk), float(delay), attempts=sel))
    return out


def config_from_args(args: argparse.Namespace) -> FakeServerConfig:
    """The server configuration the parsed options describe (ValueError for bad values)."""
    users = dict(_pair(u, "--user") for u in args.user)
    plans = dict(_pair(p, "--plan") for p in args.plan)
    caps = dict(DEFAULT_BAR_CAPS)
    caps["anonymous"] = args.anonymous_cap
    return FakeServerConfig(
        host=args.host,
        port=args.port,
        http_port=args.http_port,
        heartbeat_interval=args.heartbeat_interval,
        heartbeat_timeout=args.heartbeat_timeout,
        enforce_heartbeats=not args.no_heartbeat_check,
        allowed_origins=None if args.any_origin else FakeServerConfig().allowed_origins,
        max_connections=args.max_connections,
        users=users,
        user_plans=plans,
        captcha_users=frozenset(args.captcha_user),
        twofa_users=frozenset(args.twofa_user),
        totp_code=args.totp_code,
        bar_caps=caps,
        intraday_depth=args.intraday_depth,
        history_depth=args.history_depth,
        live=args.live,
        bar_seconds=args.bar_seconds,
        updates_per_bar=args.updates_per_bar,
        packing=args.packing,
        mix_heartbeats=args.mix_heartbeats,
        faults=tuple(_faults(args)),
    )


def run(
    args: argparse.Namespace,
    *,
    stop: threading.Event | None = None,
    out: TextIO | None = None,
    on_started: Callable[[FakeTradingView], None] | None = None,
) -> int:
    """Run the server until ``stop`` is set (or Ctrl-C / SIGTERM); returns an exit code."""
    out = out if out is not None else sys.stdout
    try:
        config = config_from_args(args)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = stop if stop is not None else threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with FakeTradingView(config) as tv:
            print(f"fake TradingView WebSocket: {tv.ws_url}", file=out)
            print(f"fake TradingView HTTP:      {tv.http_url}", file=out)
            print(f"  TV_WS_URL={tv.ws_url}", file=out)
            print(f"  TV_SEARCH_URL={tv.search_url}", file=out)
            print(f"  TV_SIGNIN_URL={tv.signin_url}", file=out)
            out.flush()
            if on_started is not None:
                on_started(tv)
            try:
                while not stop.wait(0.2):
                    pass
            except KeyboardInterrupt:
                pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m tvadapter.testing``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args)
