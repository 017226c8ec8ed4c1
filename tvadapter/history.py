"""History as pandas DataFrames: the only module of :mod:`tvadapter` that uses pandas.

:func:`bars_frame` builds tvDatafeed's frame shape from checked bar arrays:

* index named ``datetime``: timezone-aware UTC (``datetime64[ns, UTC]``), oldest first, unique
  (tvDatafeed used naive *local* times, which differ between machines and break at DST);
* columns ``symbol`` (the ``EX:SYM`` string, first, object dtype as in tvDatafeed), ``open``,
  ``high``, ``low``, ``close``, ``volume``, all float64;
* ``volume`` is **NaN** when the server sent no volume (indices and other instruments send
  5-element bars).  tvDatafeed wrote ``0.0`` there, which cannot be told apart from a bar that
  really traded nothing; NaN says "unknown", and pandas' reductions (``sum``, ``mean``) skip it.
  Use ``df.fillna({"volume": 0.0})`` for tvDatafeed's behaviour.

:func:`parse_timescale_update` is the fast path for large ``timescale_update`` packets: it cuts
the bars of the first series out of the JSON text, reduces them to CSV and parses the numbers
with a C reader, without building one Python object per bar (a 5,000-bar packet is ~400 KB;
the generic :func:`tvadapter.protocol.parse_payload` spends most of its time creating objects).
It is deliberately narrow: the packet must have the server's compact layout, the bar text may
hold nothing but ``{"i":<int>,"v":[<5 or 6 numbers>]}`` objects, and the rest of the series map
is parsed as JSON.  Anything else returns ``None`` and the caller uses the generic parser.  (One
leniency: number spellings JSON forbids, such as ``+1`` or ``.5``, are read as the obvious
values rather than refused.)  Numbers parse exactly as ``float()`` would: with pyarrow's
CSV reader when pyarrow is installed (``pip install tvadapter[parquet]``; about twice as fast
as the alternative here), else with pandas' C reader (pandas >= 3 rounds correctly; older
pandas is asked for its round-trip parser).  The bar arrays it returns are column-major
(Fortran order), so the five price columns are one contiguous block that :func:`bars_frame`
(``copy=False``) hands to pandas as it is.

Where the time goes (5,000 bars, ~380 KB, measured with ``benchmarks/bench_parse.py``): about
half is pyarrow tokenising and converting 35,000 numbers (NumPy's and Python's own parsers
were 5-7x slower; pyarrow's JSON reader 3x), the CSV reduction (one ``bytes.translate``)
~10 %, the request's checks ~5 %, and the frame ~3 %: the index wraps the int64 nanoseconds
without parsing, and the frame is built from its two blocks (pandas >= 3's
``create_dataframe_from_blocks``; the array-to-frame constructor otherwise).  The ``symbol``
column stays ``object`` (as tvDatafeed's, so ``df["symbol"] == "NASDAQ:AAPL"`` and every
``str`` use behave the same): filled with one shared string object, it costs ~15 us; a
categorical would save nothing measurable and would change the dtype users see.

Pure functions; safe to call from any thread.
"""

from __future__ import annotations

import importlib
import io
import json
import re
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ._request import COLUMNS, FloatArray, HistoryResult, SeriesBars, bars_to_array
from .protocol import parse_bars

__all__ = [
    "FAST_PATH_MIN_LENGTH",
    "FRAME_COLUMNS",
    "bars_frame",
    "empty_frame",
    "parse_timescale_update",
    "result_frame",
]

#: Columns of every history frame, in order.
FRAME_COLUMNS = ("symbol", "open", "high", "low", "close", "volume")
#: Packets shorter than this go through the generic parser (it is fast enough for them).
FAST_PATH_MIN_LENGTH = 4_096

_T = COLUMNS.index("time")
_PANDAS_3 = int(pd.__version__.split(".", 1)[0]) >= 3
# The reduced bar text of a bar: an empty field, i, an empty field, then t, o, h, l, c and
# (maybe) volume.
_FIELDS = len(COLUMNS) + 2
_NUMBER_FIELDS = [1, *range(3, _FIELDS)]
_READ_CSV_OPTIONS: dict[str, Any] = {
    "header": None,
    "names": list(range(_FIELDS)),
    "dtype": np.float64,
    "engine": "c",
    "keep_default_na": False,
    "na_values": [""],
    "skip_blank_lines": False,
}
if not _PANDAS_3:  # pragma: no cover - exercised only with pandas 2
    _READ_CSV_OPTIONS["float_precision"] = "round_trip"

_HEAD = re.compile(r'\{"m":"timescale_update","p":\["([^"\\]*)",')
_FIRST_SERIES = re.compile(r'\{"([^"\\]*)":\{(?:"node":"[^"\\]*",)?"s":\[')
# Reducing the bar text to CSV with one bytes.translate: the characters of '{"i":', '"v":' and
# '}' are deleted, '[' becomes ',' and ']' ends a line, so '[{"i":0,"v":[t,o,h,l,c,v]},{"i":1,...'
# becomes ',0,,t,o,h,l,c,v\n,1,,...'.  A well-formed bar loses exactly 10 characters; a string,
# an extra key or an object anywhere would lose more (its quotes and braces at least).
_DELETED = b'{}"iv:'
_PER_BAR_DELETED = 10
_TO_CSV = bytes.maketrans(b"[]", b",\n")
# Letters of true/false/null: a CSV reader would turn the first two into 1.0/0.0.  Any other
# non-numeric text makes the readers fail.
_FORBIDDEN = (b"t", b"l")
_DECODER = json.JSONDecoder()


def _numbers_pandas(data: bytes) -> FloatArray | None:
    """Reduced CSV bytes -> float64 array with pandas' C reader (rows of 6 or 7 numbers)."""
    try:
        # Bytes, not StringIO: the reader then tokenises the buffer directly (twice as fast).
        table = pd.read_csv(io.BytesIO(data), **_READ_CSV_OPTIONS)
    except (ValueError, pd.errors.ParserError):
        return None
    numbers: FloatArray = table.to_numpy(dtype=np.float64, copy=False)
    if not np.isnan(numbers[:, [0, 2]]).all():
        return None  # the fields that must be empty are not
    columns: FloatArray = numbers.T[_NUMBER_FIELDS]  # (7, n), C order
    result: FloatArray = columns.T  # (n, 7), column-major
    return result


class _Arrow:
    """pyarrow's CSV reader, when installed (about twice as fast as pandas' here).

    Single-threaded (``use_threads=False``: no thread pool is started), strict (no null
    spellings: a non-number or an empty field fails the read) and correctly rounded (Arrow
    parses floats with fast_float).  Every row must have the same number of fields.
    The options are built once per row width and block size (a read of a buffer smaller than
    the block is a single block: one chunk per column).  Only adds entries to its option
    cache (a race builds an entry twice); safe to use from several threads at once.
    """

    def __init__(self) -> None:
        import pyarrow as pa  # noqa: PLC0415 - optional accelerator, loaded on first use
        import pyarrow.csv as pacsv  # noqa: PLC0415

        self.pa = pa
        self.csv = pacsv
        self.parse = pacsv.ParseOptions(delimiter=",", quote_char=False, ignore_empty_lines=False)
        self.convert = {
            width: pacsv.ConvertOptions(
                column_types={str(i): pa.float64() for i in _NUMBER_FIELDS[: width - 2]},
                include_columns=[str(i) for i in _NUMBER_FIELDS[: width - 2]],
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            )
            for width in (_FIELDS - 1, _FIELDS)
        }
        self.read: dict[tuple[int, int], Any] = {}

    def _read_options(self, width: int, size: int) -> Any:
        block = max(1 << 16, 1 << size.bit_length())  # > size: one block
        options = self.read.get((width, block))
        if options is None:
            options = self.csv.ReadOptions(
                column_names=[str(i) for i in range(width)], use_threads=False, block_size=block
            )
            self.read[(width, block)] = options
        return options

    def numbers(self, data: bytes) -> FloatArray | None:
        """Reduced CSV bytes -> ``(n, 7)`` float64 array in column-major (Fortran) order."""
        end = data.find(b"\n")
        width = data.count(b",", 0, end if end >= 0 else len(data)) + 1
        convert = self.convert.get(width)
        if convert is None:
            return None
        try:
            table = self.csv.read_csv(
                self.pa.BufferReader(data),
                read_options=self._read_options(width, len(data)),
                parse_options=self.parse,
                convert_options=convert,
            )
        except (self.pa.ArrowException, ValueError):
            return None
        out = np.empty((len(COLUMNS), table.num_rows), dtype=np.float64)
        for row, column in enumerate(table.columns):
            out[row] = column.to_numpy()
        if width < _FIELDS:
            out[len(COLUMNS) - 1] = np.nan
        result: FloatArray = out.T  # (n, 7), column-major
        return result


_arrow: _Arrow | None = None
#: "auto" (pyarrow when installed, else pandas), "pyarrow" or "pandas"; tests switch it.
csv_engine = "auto"


def _numbers(data: bytes) -> FloatArray | None:
    global _arrow  # lazily built once (a race only builds it twice), then read-only
    if csv_engine != "pandas":
        if _arrow is None:
            try:
                _arrow = _Arrow()
            except ImportError:
                if csv_engine == "pyarrow":
                    raise
        if _arrow is not None:
            found = _arrow.numbers(data)
            if found is not None:
                return found
            # Mixed 5- and 6-number bars (or garbage): pandas pads the former, rejects the latter.
    return _numbers_pandas(data)


def _bars_from_text(text: str) -> FloatArray | None:
    """``[{"i":0,"v":[...]},...,{"i":n,"v":[...]}`` (without the final ``]``) -> ``(n, 7)``
    array, or None if the text is not exactly that.

    The text is reduced to CSV with one ``bytes.translate`` (see ``_DELETED``), then checked:
    the readers accept only numbers where numbers belong and nothing where the reduction left
    empty fields (so no strings, objects, literals or extra keys survived); every line has the
    same number of fields (so no bar's fields shifted into another); exactly 10 characters were
    removed per bar (so nothing else was deleted: no string, key or object, whose quotes and
    braces would count); and each ``i`` is an integer.
    """
    if not (text.startswith('[{"i":') and text.endswith("]}") and text.isascii()):
        return None
    raw = text.encode("ascii")
    # Each buffer is dropped as soon as the next exists: the allocator can then reuse its
    # memory for the next one instead of asking the system for fresh pages (which costs page
    # faults on every call, ~0.3 ms for a 5,000-bar packet, once the heap is fragmented).
    del text
    csv = raw.translate(_TO_CSV, _DELETED)
    deleted = len(raw) - len(csv)
    del raw
    if any(letter in csv for letter in _FORBIDDEN):
        return None
    data = _numbers(csv)
    del csv
    if data is None or data.ndim != 2 or data.shape[1] != len(COLUMNS):
        return None
    if deleted != _PER_BAR_DELETED * data.shape[0]:
        return None
    if np.isnan(data[:, : len(COLUMNS) - 1]).any():
        return None
    index = data[:, 0]
    if not np.array_equal(index, np.floor(index)):
        return None
    return data


def parse_timescale_update(
    payload: str, *, min_length: int = FAST_PATH_MIN_LENGTH
) -> list[SeriesBars] | None:
    """Bars of every series in a ``timescale_update`` payload, or None to use the generic parser.

    Returns one :class:`~tvadapter._request.SeriesBars` per series entry (study entries are
    skipped: history requests create none).  None when ``payload`` is shorter than
    ``min_length``, is not a ``timescale_update`` in the server's compact layout, or holds
    anything unexpected (see the module docstring).
    """
    if len(payload) < min_length:
        return None
    head = _HEAD.match(payload)
    if head is None:
        return None
    session = head.group(1)
    map_start = head.end()
    first = _FIRST_SERIES.match(payload, map_start)
    if first is None:
        return None
    series_id = first.group(1)
    open_at = first.end() - 1  # the '[' of "s":[
    if payload.startswith("]", open_at + 1):
        return None  # "s":[] -- small, the generic parser handles it
    # The bars end at the first "}]" after "s":[ (bar objects hold only numbers).  Searching
    # backwards for the '"ns"' key that follows them scans only the short tail of the packet;
    # if that lands elsewhere (several series in one update) the text is not pure bars, fails
    # the check, and the forward search decides.
    close_at = payload.rfind('}],"ns":', open_at)
    data = _bars_from_text(payload[open_at : close_at + 1]) if close_at > open_at else None
    if data is None:
        close_at = payload.find("}]", open_at)
        if close_at < 0:
            return None
        data = _bars_from_text(payload[open_at : close_at + 1])
        if data is None:
            return None
    # The series map with the bars cut out ("s":[]), parsed as JSON: validates everything else
    # in it and yields the other entries.  Parsing stops at the end of the map.
    rest = payload[map_start : open_at + 1] + payload[close_at + 1 :]
    try:
        series_map, _end = _DECODER.raw_decode(rest)
    except ValueError:
        return None
    if type(series_map) is not dict:
        return None
    entry = series_map.get(series_id)
    if type(entry) is not dict or entry.get("s") != []:
        return None
    turnaround = entry.get("t")
    if turnaround is not None and not isinstance(turnaround, str):
        return None
    found = [SeriesBars(session, series_id, turnaround, data)]
    for key, other in series_map.items():
        if key == series_id:
            continue
        if type(other) is not dict:
            return None
        if "s" not in other:
            continue  # a study payload
        other_turnaround = other.get("t")
        if other_turnaround is not None and not isinstance(other_turnaround, str):
            return None
        try:
            bars = parse_bars(other["s"])
        except ValueError:
            return None
        found.append(SeriesBars(session, key, other_turnaround, bars_to_array(bars)))
    return found


#: The columns index shared by every frame (object dtype, as in tvDatafeed; immutable).
_COLUMNS_INDEX = pd.Index(FRAME_COLUMNS, dtype=object)


def _assemble(index: pd.DatetimeIndex, columns: list[Any]) -> pd.DataFrame:
    """A frame of ``columns`` (one 1-D array per name in FRAME_COLUMNS) on ``index``.

    Uses pandas' own array-to-frame constructor when it is there (five times faster than the
    dict path, which re-infers every column and re-creates the columns index each time), and
    the public constructor otherwise; both give identical frames (tested).
    """
    from_arrays = getattr(pd.DataFrame, "_from_arrays", None)
    if from_arrays is not None:
        try:
            frame = from_arrays(
                columns, columns=_COLUMNS_INDEX, index=index, verify_integrity=False
            )
        except (TypeError, ValueError):  # pragma: no cover - a pandas without this signature
            frame = None
        if isinstance(frame, pd.DataFrame):
            return frame
    return _assemble_public(index, columns)


def _assemble_public(index: pd.DatetimeIndex, columns: list[Any]) -> pd.DataFrame:
    data = dict(zip(FRAME_COLUMNS, columns, strict=True))
    # An explicit object Series, or pandas >= 3 would infer its string dtype.
    data["symbol"] = pd.Series(data["symbol"], index=index, dtype=object, copy=False)
    frame: pd.DataFrame = pd.DataFrame(
        data,
        index=index,
        columns=_COLUMNS_INDEX,
        copy=False,
    )
    return frame


def _symbol_column(symbol: str, rows: int) -> Any:
    # Object dtype (as tvDatafeed's frames had; pandas >= 3 would otherwise infer its slower to
    # build string dtype), filled without a per-element conversion.
    column = np.empty(rows, dtype=object)
    column.fill(symbol)
    return column


def empty_frame(symbol: str = "") -> pd.DataFrame:
    """A frame with no rows but the full history shape (index, columns, dtypes)."""
    index = pd.DatetimeIndex([], dtype="datetime64[ns, UTC]", name="datetime")
    empty = np.empty(0, dtype=np.float64)
    return _assemble(index, [_symbol_column(symbol, 0)] + [empty.copy() for _ in range(5)])


def _load_from_blocks() -> Any:
    try:
        module = importlib.import_module("pandas.api.internals")
    except ImportError:  # pragma: no cover - pandas < 3
        return None
    return getattr(module, "create_dataframe_from_blocks", None)


# pandas' block-level frame constructor (pandas >= 3): takes the arrays as they are.
_FROM_BLOCKS = _load_from_blocks()
_SYMBOL_PLACEMENT = np.array([0], dtype=np.intp)
_PRICE_PLACEMENT = np.arange(1, len(FRAME_COLUMNS), dtype=np.intp)
_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


# pandas' internal wrappers: an index over a datetime64 array as it is.
_ARRAY_SIMPLE_NEW: Any = getattr(pd.arrays.DatetimeArray, "_simple_new", None)
_INDEX_SIMPLE_NEW: Any = getattr(pd.DatetimeIndex, "_simple_new", None)


def _utc_index(nanoseconds: npt.NDArray[np.int64]) -> pd.DatetimeIndex:
    """The ``datetime`` index (``datetime64[ns, UTC]``) of UTC epoch nanoseconds.

    Wraps the array as it is (pandas' internal constructors: no parsing, no timezone
    conversion; 5x cheaper) when they behave, else the public constructor (tested equal)."""
    values = nanoseconds.view("datetime64[ns]")
    index: object = None
    if _ARRAY_SIMPLE_NEW is not None and _INDEX_SIMPLE_NEW is not None:
        try:
            index = _INDEX_SIMPLE_NEW(_ARRAY_SIMPLE_NEW(values, dtype=_UTC_NS), name="datetime")
        except (TypeError, ValueError):  # pragma: no cover - a pandas with other signatures
            index = None
    if isinstance(index, pd.DatetimeIndex) and index.dtype == _UTC_NS and len(index) == len(values):
        return index
    public: pd.DatetimeIndex = pd.DatetimeIndex(values, name="datetime").tz_localize("UTC")
    return public  # pragma: no cover


def _assemble_blocks(
    index: pd.DatetimeIndex, symbol: npt.NDArray[np.object_], prices: FloatArray
) -> pd.DataFrame | None:
    """The frame from its two blocks: ``symbol`` (1-D object) and ``prices`` (a C-contiguous
    ``(5, n)`` float64 array, used as it is); None when pandas has no such constructor."""
    if _FROM_BLOCKS is None:  # pragma: no cover - pandas < 3
        return None
    try:
        frame = _FROM_BLOCKS(
            [(symbol.reshape(1, -1), _SYMBOL_PLACEMENT), (prices, _PRICE_PLACEMENT)],
            index=index,
            columns=_COLUMNS_INDEX,
        )
    except (TypeError, ValueError):  # pragma: no cover - a pandas with another signature
        return None
    return frame if isinstance(frame, pd.DataFrame) else None


def bars_frame(symbol: str, data: FloatArray, *, copy: bool = True) -> pd.DataFrame:
    """tvDatafeed-shaped frame (see the module docstring) from an ``(n, 7)`` bar array.

    ``data`` must already be checked: sorted by time with unique times (a
    :class:`~tvadapter._request.HistoryResult` is).  Vectorised: no Python loop over bars.
    With ``copy=False`` the frame may share memory with ``data`` (faster; for callers that
    drop ``data`` afterwards, as the client does): with a column-major ``data`` (what
    :func:`parse_timescale_update` returns) the five price columns are used in place.
    """
    if data.ndim != 2 or data.shape[1] != len(COLUMNS):
        raise ValueError(f"expected an (n, {len(COLUMNS)}) bar array, got shape {data.shape}")
    rows = data.shape[0]
    if rows == 0:
        return empty_frame(symbol)
    index = _utc_index(np.rint(data[:, _T] * 1e9).astype(np.int64))
    prices = data[:, 2:7].T
    prices = np.array(prices, order="C") if copy else np.ascontiguousarray(prices)
    symbols = _symbol_column(symbol, rows)
    frame = _assemble_blocks(index, symbols, prices)
    if frame is None:  # pragma: no cover - pandas < 3
        frame = _assemble(index, [symbols, *prices])
    return frame


def result_frame(result: HistoryResult, *, copy: bool = True) -> pd.DataFrame:
    """The frame for a finished request (``copy=False``: see :func:`bars_frame`)."""
    return bars_frame(result.symbol, result.data, copy=copy)
