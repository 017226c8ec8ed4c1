"""The ``tvadapter`` command line (also ``python -m tvadapter``).

Sub-commands (``tvadapter <command> --help`` for each)::

    tvadapter hist SYMBOL [SYMBOL ...] [--exchange EX] [--interval 1H] [--bars N]
                   [--start ISO --end ISO] [-o out.csv|out.json|out.parquet]
    tvadapter search TEXT [--exchange EX] [--type stock] [--limit N]
    tvadapter live SYMBOL [--exchange EX] [--interval 1] [--count N]
    tvadapter fake-server [--port P] [fault options]
    tvadapter demo [--output out/demo.csv] [--symbols ...]

``hist`` with one symbol prints a table (or writes ``-o``); with several it uses the bulk path
(:func:`tvadapter._bulk.get_hist_many`: concurrent requests over one connection, a progress bar
on a terminal) and prints or writes all of them stacked (the ``symbol`` column tells them
apart).  ``live`` prints closed bars as CSV lines as they arrive.  ``fake-server`` runs the
bundled fake TradingView server (:mod:`tvadapter.testing`); ``demo`` is the main job, offline.

Configuration: the ``TV_*`` environment variables (:meth:`tvadapter.NetworkConfig.from_env`:
``TV_WS_URL``, ``TV_SEARCH_URL``, ``TV_REQUESTS_PER_MINUTE``...; credentials from
``TV_USERNAME``/``TV_PASSWORD``, ``TV_SESSION_ID``/``TV_SESSION_ID_SIGN`` or ``TV_AUTH_TOKEN``),
overridden by flags (``--ws-url``, ``--rpm``, ``--username``...).  Passwords, cookies and
tokens are only read from the environment (or a prompt), never from flags, and never printed.

Exit codes (stable, for scripts):

====  =====================================================================================
0     success
1     partial failure: some symbols of a ``hist`` batch failed (the others were written)
2     usage or configuration error (bad flag or ``TV_*`` value, server refused our
      Origin/URL, missing optional dependency)
3     symbol not found, or the series was refused (``symbol_error`` / ``series_error``)
4     authentication failed (wrong password, captcha, 2FA, expired or refused token)
5     network failure or timeout (could not connect, connection lost, no data in time,
      protocol error, data that failed the integrity checks)
6     rate limited (HTTP 429, our own limiter) or circuit breaker open
7     any other error
130   interrupted (Ctrl-C)
====  =====================================================================================

Errors are printed as one line on stderr (``tvadapter: error: <Kind>: <message>``); ``-v``
adds log output (``-vv`` debug) and the traceback of an error.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import os
import queue
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from ._auth import Authenticator, Credentials
from .config import NetworkConfig
from .errors import (
    AuthenticationError,
    ConfigurationError,
    DataIncompleteError,
    HttpStatusError,
    ProtocolError,
    RateLimitedError,
    SeriesError,
    SymbolNotFoundError,
    TvCircuitOpenError,
    TvConnectionError,
    TvTimeoutError,
)
from .interval import resolution

__all__ = [
    "EXIT_AUTH",
    "EXIT_INTERRUPTED",
    "EXIT_NETWORK",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_OTHER",
    "EXIT_PARTIAL",
    "EXIT_RATE_LIMITED",
    "EXIT_USAGE",
    "build_parser",
    "exit_code_for",
    "main",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4
EXIT_NETWORK = 5
EXIT_RATE_LIMITED = 6
EXIT_OTHER = 7
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    partial failure: some symbols of a batch failed (the others were written)
  2    usage or configuration error (bad flag or TV_* value, Origin/URL refused)
  3    symbol not found, or series refused by the server
  4    authentication failed (password, captcha, 2FA, token)
  5    network failure or timeout (connect, connection lost, no data, protocol)
  6    rate limited (HTTP 429 or own limiter) or circuit breaker open
  7    any other error
  130  interrupted (Ctrl-C)

environment: TV_WS_URL, TV_ORIGIN, TV_SEARCH_URL, TV_SIGNIN_URL, TV_CONNECT_TIMEOUT,
TV_RECV_TIMEOUT, TV_REQUEST_DEADLINE, TV_MAX_RETRIES, TV_REQUESTS_PER_MINUTE, TV_BURST_SIZE,
... (see tvadapter.NetworkConfig.from_env); credentials: TV_USERNAME + TV_PASSWORD,
TV_SESSION_ID (+ TV_SESSION_ID_SIGN) or TV_AUTH_TOKEN. Flags override the environment."""

#: On Ctrl-C, how long ``hist`` waits for requests in flight before closing the client (which
#: ends them at once).
CANCEL_TIMEOUT = 2.0

#: Output formats by file extension.
FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


# --------------------------------------------------------------------------------------------
# Errors -> exit codes
# --------------------------------------------------------------------------------------------


class UsageError(Exception):
    """A problem with the command line itself (exit code 2)."""


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an exception (see the module docstring)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, (SymbolNotFoundError, SeriesError)):
        return EXIT_NOT_FOUND
    if isinstance(exc, AuthenticationError):
        return EXIT_AUTH
    if isinstance(exc, (RateLimitedError, TvCircuitOpenError)):
        return EXIT_RATE_LIMITED
    if isinstance(exc, (ConfigurationError, UsageError)):
        return EXIT_USAGE
    if isinstance(exc, HttpStatusError) and exc.status == 429:  # pragma: no cover - is RateLimited
        return EXIT_RATE_LIMITED
    if isinstance(
        exc,
        (
            TvConnectionError,
            TvTimeoutError,
            ProtocolError,
            DataIncompleteError,
            HttpStatusError,
            ConnectionError,
            TimeoutError,
        ),
    ):
        return EXIT_NETWORK
    if isinstance(exc, ValueError):  # e.g. Credentials.from_env: bad TV_* combination
        return EXIT_USAGE
    return EXIT_OTHER


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no details)"
    return f"{type(exc).__name__}: {text}"


# --------------------------------------------------------------------------------------------
# Argument types
# --------------------------------------------------------------------------------------------


def _interval(text: str) -> str:
    try:
        return resolution(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _timestamp(text: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from None
    if stamp is pd.NaT:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}")
    utc: pd.Timestamp = (
        stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    )
    return utc


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


# --------------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------------


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout (the exit-code table); descriptions are pre-wrapped."""


def _para(text: str) -> str:
    return textwrap.fill(" ".join(text.split()), width=88)


def _verbosity_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log what happens (-vv: debug) and show tracebacks of errors",
    )
    return parent


def _connection_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    net = parent.add_argument_group("connection (override the TV_* environment)")
    net.add_argument("--ws-url", metavar="URL", help="WebSocket endpoint (TV_WS_URL)")
    net.add_argument("--origin", metavar="URL", help="Origin header of the upgrade (TV_ORIGIN)")
    net.add_argument("--search-url", metavar="URL", help="symbol search endpoint")
    net.add_argument("--signin-url", metavar="URL", help="sign-in endpoint")
    net.add_argument(
        "--rpm", type=_positive_int, metavar="N", help="requests per minute (rate limit)"
    )
    net.add_argument("--burst", type=_positive_int, metavar="N", help="rate-limit burst size")
    net.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="S",
        help="deadline of one request, retries included (seconds)",
    )
    net.add_argument(
        "--connect-timeout", type=_positive_float, metavar="S", help="one connection attempt"
    )
    net.add_argument("--retries", type=int, metavar="N", help="retries after a failed attempt")
    auth = parent.add_argument_group("account (default: TV_* credentials, else anonymous)")
    who = auth.add_mutually_exclusive_group()
    who.add_argument(
        "--username",
        metavar="NAME",
        help="sign in as NAME; the password comes from TV_PASSWORD or a prompt",
    )
    who.add_argument("--anonymous", action="store_true", help="ignore TV_* credentials; no login")
    auth.add_argument("--totp", metavar="CODE", help="one-time 2FA code for --username")
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The ``tvadapter`` argument parser."""
    verbosity = _verbosity_parent()
    connection = _connection_parent()
    parser = argparse.ArgumentParser(
        prog="tvadapter",
        description=_para(
            "A resilient TradingView data client: history, bulk downloads, search, "
            "a streaming live feed, and a bundled fake server."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log what happens (-vv: debug) and show tracebacks; also after the command",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    hist = commands.add_parser(
        "hist",
        parents=[verbosity, connection],
        help="download historical bars (one symbol or many at once)",
        description=_para(
            "Download historical bars. Several symbols are fetched concurrently over "
            "one connection (within the rate limit) with a progress bar on a terminal; a symbol "
            "that fails does not stop the others (exit code 1)."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=_Formatter,
    )
    hist.add_argument("symbols", nargs="+", metavar="SYMBOL", help="SYM or EX:SYM")
    hist.add_argument("-e", "--exchange", default="NSE", help="exchange of bare symbols (NSE)")
    hist.add_argument(
        "-i", "--interval", type=_interval, default="1D", help="1, 5, 15, 1H, 4H, 1D, 1W... (1D)"
    )
    hist.add_argument(
        "-n", "--bars", type=_positive_int, default=100, metavar="N", help="newest N bars (100)"
    )
    hist.add_argument("--start", type=_timestamp, metavar="ISO", help="range start (UTC)")
    hist.add_argument("--end", type=_timestamp, metavar="ISO", help="range end (default: now)")
    hist.add_argument("--fut-contract", type=_positive_int, metavar="N", help="1: front month")
    hist.add_argument("--extended", action="store_true", help="extended trading hours")
    hist.add_argument("-o", "--output", metavar="FILE", help="write .csv, .json or .parquet")
    hist.add_argument("--format", choices=("csv", "json", "parquet"), help="override by name")
    hist.add_argument(
        "-j", "--concurrency", type=_positive_int, metavar="N", help="requests in flight (8)"
    )
    bar = hist.add_mutually_exclusive_group()
    bar.add_argument("--progress", action="store_true", default=None, help="always show progress")
    bar.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress"
    )
    hist.set_defaults(func=_cmd_hist)

    search = commands.add_parser(
        "search",
        parents=[verbosity, connection],
        help="search TradingView's symbols",
        description=_para("Search symbols (v3 symbol search) and print one per line."),
        epilog=EXIT_CODES_HELP,
        formatter_class=_Formatter,
    )
    search.add_argument("text", metavar="TEXT")
    search.add_argument("-e", "--exchange", default="", help="only this exchange")
    search.add_argument("--type", default="", help="stock, crypto, forex, futures, index...")
    search.add_argument("--limit", type=_positive_int, default=50, metavar="N", help="(50)")
    search.set_defaults(func=_cmd_search)

    live = commands.add_parser(
        "live",
        parents=[verbosity, connection],
        help="print closed bars as they arrive (streaming)",
        description=_para("Stream a live series and print each closed bar as a CSV line."),
        epilog=EXIT_CODES_HELP,
        formatter_class=_Formatter,
    )
    live.add_argument("symbol", metavar="SYMBOL")
    live.add_argument("-e", "--exchange", default="NSE", help="exchange (NSE)")
    live.add_argument("-i", "--interval", type=_interval, default="1", help="bar interval (1)")
    live.add_argument(
        "-c", "--count", type=_positive_int, metavar="N", help="stop after N bars (default: never)"
    )
    live.set_defaults(func=_cmd_live)

    fake = commands.add_parser(
        "fake-server",
        parents=[verbosity],
        help="run the bundled fake TradingView server (127.0.0.1)",
        description=_para(
            "Run the fake TradingView server (WebSocket + HTTP) until Ctrl-C; point "
            "the client at it with the TV_* lines it prints."
        ),
        formatter_class=_Formatter,
    )
    _add_fake_server_arguments(fake)
    fake.set_defaults(func=_cmd_fake_server)

    demo = commands.add_parser(
        "demo",
        parents=[verbosity],
        help="the main job, offline: a basket through the full stack against the fake server",
        description=_para(
            "Start the bundled fake server with faults (a 429, a dropped connection, "
            "latency), download a basket of symbols through the full client stack, show what the "
            "resilience layer did, verify the data against the server and write it to a file."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=_Formatter,
    )
    from ._demo import add_arguments as add_demo_arguments  # noqa: PLC0415 - lazy

    add_demo_arguments(demo)
    demo.set_defaults(func=_cmd_demo)
    return parser


def _version() -> str:
    from . import __version__  # noqa: PLC0415 - avoid a cycle at import time

    return __version__


def _add_fake_server_arguments(parser: argparse.ArgumentParser) -> None:
    try:
        from .testing.cli import add_arguments  # noqa: PLC0415 - optional extra
    except ImportError:
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    add_arguments(parser)


# --------------------------------------------------------------------------------------------
# Building the client
# --------------------------------------------------------------------------------------------


def _config(args: argparse.Namespace, environ: Mapping[str, str]) -> NetworkConfig:
    overrides: dict[str, Any] = {}
    for flag, name in (
        ("ws_url", "ws_url"),
        ("origin", "origin"),
        ("search_url", "search_url"),
        ("signin_url", "signin_url"),
        ("rpm", "requests_per_minute"),
        ("burst", "burst_size"),
        ("timeout", "request_deadline"),
        ("connect_timeout", "connect_timeout"),
        ("retries", "max_retries"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[name] = value
    return NetworkConfig.from_env(environ, **overrides)


def _credentials(args: argparse.Namespace, environ: Mapping[str, str]) -> Credentials:
    if getattr(args, "anonymous", False):
        return Credentials()
    username = getattr(args, "username", None)
    totp = getattr(args, "totp", None)
    if username is None:
        if totp is not None:
            raise UsageError("--totp needs --username")
        return Credentials.from_env(environ)
    password = environ.get("TV_PASSWORD") or None
    if password is None and sys.stdin.isatty():
        password = getpass.getpass(f"TradingView password for {username}: ") or None
    if password is None:
        raise UsageError("--username needs a password: set TV_PASSWORD or run on a terminal")
    return Credentials(username=username, password=password, totp=totp)


def _client_kwargs(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    config = _config(args, environ)
    credentials = _credentials(args, environ)
    return {"config": config, "authenticator": Authenticator(credentials, config=config)}


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _output_format(path: str, explicit: str | None) -> str:
    if explicit is not None:
        return explicit
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(
            f"--output: cannot tell the format of {path!r}; use .csv, .json, .parquet or --format"
        )
    return fmt


def write_frame(frame: pd.DataFrame, path: str | Path, fmt: str) -> None:
    """Write ``frame`` (history shape) as csv, json (records, ISO UTC times) or parquet."""
    target = Path(path)
    if target.parent != Path():
        target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(target, date_format="%Y-%m-%dT%H:%M:%S%z")
    elif fmt == "json":
        records = frame.reset_index()
        records.to_json(target, orient="records", date_format="iso", date_unit="s", indent=1)
    elif fmt == "parquet":
        try:
            import pyarrow  # noqa: F401, PLC0415 - optional extra
        except ImportError:
            raise UsageError(
                "parquet output needs pyarrow: pip install 'tvadapter[parquet]'"
            ) from None
        frame.to_parquet(target)
    else:  # pragma: no cover - argparse choices
        raise UsageError(f"unknown format {fmt!r}")


def bar_lines(frame: pd.DataFrame) -> list[str]:
    """CSV lines (``datetime,symbol,open,high,low,close,volume``) for the rows of ``frame``."""
    index = pd.DatetimeIndex(frame.index)
    columns = frame[["symbol", "open", "high", "low", "close", "volume"]]
    return [
        ",".join([stamp.isoformat(), str(row[0]), *(repr(float(x)) for x in row[1:])])
        for stamp, row in zip(index, columns.itertuples(index=False, name=None), strict=True)
    ]


def _print_table(frame: pd.DataFrame, out: TextIO) -> None:
    with pd.option_context(
        "display.max_rows", None, "display.width", 200, "display.max_columns", None
    ):
        out.write(frame.to_string() + "\n")


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


class _Context:
    """What a command needs from its surroundings (replaceable in tests)."""

    def __init__(self, stdout: TextIO, stderr: TextIO, environ: Mapping[str, str]) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.environ = environ


def _cmd_hist(args: argparse.Namespace, ctx: _Context) -> int:
    from ._bulk import HistRequest  # noqa: PLC0415 - lazy: pandas-heavy paths
    from ._client import TvDatafeed  # noqa: PLC0415

    fmt = _output_format(args.output, args.format) if args.output else None
    if args.end is not None and args.start is None:
        raise UsageError("--end needs --start")
    with TvDatafeed(**_client_kwargs(args, ctx.environ)) as client:
        if len(args.symbols) == 1:
            frame = client.get_hist(
                args.symbols[0],
                args.exchange,
                args.interval,
                args.bars,
                args.fut_contract,
                args.extended,
                start=args.start,
                end=args.end,
            )
            failed: dict[str, BaseException] = {}
            total = 1
        else:
            requests = [
                HistRequest(s, fut_contract=args.fut_contract, extended_session=args.extended)
                for s in args.symbols
            ]
            result = client.get_hist_many(
                requests,
                exchange=args.exchange,
                interval=args.interval,
                n_bars=args.bars,
                start=args.start,
                end=args.end,
                max_concurrency=args.concurrency,
                progress=args.progress,
                progress_stream=ctx.stderr,
                cancel_timeout=CANCEL_TIMEOUT,
            )
            failed = result.failed
            total = len(result)
            if len(failed) == total:
                # Nothing to show: the batch failed as a whole; report its first error.
                for key, error in failed.items():
                    ctx.stderr.write(f"tvadapter: {key}: {_one_line(error)}\n")
                raise next(iter(failed.values()))
            frame = result.concat()
    if fmt is not None:
        write_frame(frame, args.output, fmt)
        ctx.stderr.write(f"wrote {len(frame):,} bars to {args.output}\n")
    else:
        _print_table(frame, ctx.stdout)
    for key, error in failed.items():
        ctx.stderr.write(f"tvadapter: {key} failed: {_one_line(error)}\n")
    if failed:
        ctx.stderr.write(f"tvadapter: {len(failed)} of {total} symbols failed\n")
        return EXIT_PARTIAL
    return EXIT_OK


def _cmd_search(args: argparse.Namespace, ctx: _Context) -> int:
    from ._search import search_symbol  # noqa: PLC0415

    config = _config(args, ctx.environ)
    results = search_symbol(
        config, args.text, args.exchange, search_type=args.type, max_results=args.limit
    )
    if not results:
        ctx.stderr.write(f"no symbols match {args.text!r}\n")
        return EXIT_NOT_FOUND
    width = max(len(str(r.get("full_symbol", ""))) for r in results)
    for item in results:
        ctx.stdout.write(
            f"{item.get('full_symbol', '')!s:<{width}}  {item.get('type', '')!s:<8}  "
            f"{item.get('description', '')}\n"
        )
    return EXIT_OK


def _cmd_live(args: argparse.Namespace, ctx: _Context) -> int:
    try:
        from .live import TvDatafeedLive  # noqa: PLC0415 - the live feed (helper L1)
    except ImportError as exc:  # pragma: no cover - live.py not installed
        raise UsageError(f"the live feed is not available: {exc}") from None

    bars: queue.SimpleQueue[pd.DataFrame] = queue.SimpleQueue()

    def on_bar(seis: object, frame: pd.DataFrame) -> None:
        bars.put(frame)

    printed = 0
    with TvDatafeedLive(**_client_kwargs(args, ctx.environ)) as feed:
        seis = feed.new_seis(args.symbol, args.exchange, args.interval)
        feed.new_consumer(seis, on_bar)
        ctx.stdout.write("datetime,symbol,open,high,low,close,volume\n")
        ctx.stdout.flush()
        while args.count is None or printed < args.count:
            try:
                frame = bars.get(timeout=0.5)
            except queue.Empty:
                continue
            for line in bar_lines(frame):
                if args.count is not None and printed >= args.count:
                    break
                ctx.stdout.write(line + "\n")
                printed += 1
            ctx.stdout.flush()
    return EXIT_OK


def _cmd_fake_server(args: argparse.Namespace, ctx: _Context) -> int:
    try:
        from .testing.cli import run  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        raise UsageError(
            f"the fake server needs the testing extra (pip install 'tvadapter[testing]'): {exc}"
        ) from None
    return run(args, out=ctx.stdout)


def _cmd_demo(args: argparse.Namespace, ctx: _Context) -> int:
    from ._demo import run  # noqa: PLC0415

    return run(args, out=ctx.stdout, err=ctx.stderr)


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------

_LOGGERS = ("tvadapter", "resilience")


@contextlib.contextmanager
def _logging(verbosity: int, stream: TextIO) -> Iterator[None]:
    """Log to ``stream`` while the command runs: quiet (errors only), -v info, -vv debug."""
    level = logging.ERROR if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    saved: list[tuple[logging.Logger, int, bool]] = []
    for name in _LOGGERS:
        log = logging.getLogger(name)
        saved.append((log, log.level, log.propagate))
        log.setLevel(level)
        log.addHandler(handler)
        log.propagate = False
    try:
        yield
    finally:
        for log, old_level, propagate in saved:
            log.removeHandler(handler)
            log.setLevel(old_level)
            log.propagate = propagate


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    env = environ if environ is not None else os.environ
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    verbosity = int(getattr(args, "verbose", 0) or 0)
    command: Callable[[argparse.Namespace, _Context], int] = args.func
    with _logging(verbosity, err):
        try:
            return command(args, _Context(out, err, env))
        except KeyboardInterrupt:
            err.write("tvadapter: interrupted\n")
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # e.g. `tvadapter hist ... | head`
            with contextlib.suppress(Exception):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return EXIT_OK
        except Exception as exc:
            if verbosity > 0:
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=err)
            err.write(f"tvadapter: error: {_one_line(exc)}\n")
            return exit_code_for(exc)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
