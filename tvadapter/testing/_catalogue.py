"""The fake server's symbol catalogue: a few hundred instruments across exchanges.

Each :class:`Instrument` carries what the server needs to resolve it (``symbol_resolved``), to
answer quotes, to list it in symbol search and to generate its bars deterministically.
Exchanges: NASDAQ, NYSE, AMEX (US stocks), NSE and BSE (India), MCX (Indian commodity futures,
``CRUDEOIL1!``), BINANCE (spot and ``.P`` perpetuals), BITSTAMP, COINBASE, OANDA and FX (forex),
CME, CME_MINI, COMEX, NYMEX, CBOT (continuous futures ``1!`` and ``2!``), KRX, XETR, LSE, HOSE and
indices without volume (SP:SPX, NASDAQ:NDX, DJ:DJI, TVC:DXY, TVC:RUT, NSE:NIFTY, NSE:BANKNIFTY...).

A few descriptions deliberately hold non-ASCII text (Korean, an emoji outside the BMP) and the
text ``~m~12~m~`` so that clients' framing is exercised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date

from ._data import Calendar

__all__ = ["CALENDARS", "Catalogue", "Instrument", "default_catalogue"]

_US = Calendar("US", "America/New_York", 9 * 60 + 30, 390, extended=(4 * 60, 16 * 60))
_INDIA = Calendar("IN", "Asia/Kolkata", 9 * 60 + 15, 375)
_MCX = Calendar("MCX", "Asia/Kolkata", 9 * 60, 14 * 60 + 30)
_CRYPTO = Calendar("CRYPTO", "UTC", 0, 1440, weekdays=frozenset(range(7)), holidays=False)
_FX = Calendar("FX", "America/New_York", -7 * 60, 1440, holidays=False)
_CME = Calendar("CME", "America/Chicago", -7 * 60, 23 * 60)
_KRX = Calendar("KRX", "Asia/Seoul", 9 * 60, 390)
_XETR = Calendar("XETR", "Europe/Berlin", 9 * 60, 510)
_LSE = Calendar("LSE", "Europe/London", 8 * 60, 510)
_HOSE = Calendar("HOSE", "Asia/Ho_Chi_Minh", 9 * 60, 360)

#: Calendars by name.
CALENDARS: Mapping[str, Calendar] = {
    c.name: c for c in (_US, _INDIA, _MCX, _CRYPTO, _FX, _CME, _KRX, _XETR, _LSE, _HOSE)
}


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Instrument:
    """One tradable symbol of the catalogue. Immutable and thread-safe."""

    exchange: str
    symbol: str
    description: str
    type: str
    currency: str
    calendar: Calendar
    pricescale: int
    base_price: float
    volume_base: float | None
    country: str = ""
    volume_decimals: int = 0
    listed: date = date(2000, 1, 3)
    local_description: str | None = None
    root: str | None = None
    #: Anonymous sessions get this update mode (delayed on many exchanges).
    anonymous_update_mode: str = "streaming"
    typespecs: tuple[str, ...] = ()
    isin: str | None = None
    seed: int = field(default=0, compare=False)

    @property
    def full_name(self) -> str:
        """``"EXCHANGE:SYMBOL"``."""
        return f"{self.exchange}:{self.symbol}"

    @property
    def has_volume(self) -> bool:
        """Whether bars carry a sixth (volume) element."""
        return self.volume_base is not None


def _listed(seed: int, first_year: int, last_year: int) -> date:
    span = last_year - first_year + 1
    return date(first_year + seed % span, 1 + (seed >> 8) % 12, 1 + (seed >> 16) % 28)


def _make(  # noqa: PLR0917 - a table-building helper
    exchange: str,
    symbol: str,
    description: str,
    kind: str,
    currency: str,
    calendar: Calendar,
    pricescale: int,
    price: float | None,
    volume: float | None,
    *,
    country: str = "",
    volume_decimals: int = 0,
    years: tuple[int, int] = (1990, 2012),
    local_description: str | None = None,
    root: str | None = None,
    delayed: bool = False,
    typespecs: tuple[str, ...] = (),
) -> Instrument:
    seed = _seed(f"{exchange}:{symbol}")
    if price is None:
        price = 10.0 + (seed % 49_000) / 100.0
    isin = None
    if kind == "stock" and country:
        isin = f"{country}{seed % 10**10:010d}"
    return Instrument(
        exchange=exchange,
        symbol=symbol,
        description=description,
        type=kind,
        currency=currency,
        calendar=calendar,
        pricescale=pricescale,
        base_price=price,
        volume_base=volume,
        country=country,
        volume_decimals=volume_decimals,
        listed=_listed(seed, *years),
        local_description=local_description,
        root=root,
        anonymous_update_mode="delayed_streaming_900" if delayed else "streaming",
        typespecs=typespecs,
        isin=isin,
        seed=seed,
    )


_NASDAQ = {
    "AAPL": ("Apple Inc.", 190.0),
    "MSFT": ("Microsoft Corporation", 420.0),
    "NVDA": ("NVIDIA Corporation", 120.0),
    "AMZN": ("Amazon.com, Inc.", 180.0),
    "GOOGL": ("Alphabet Inc. Class A", 170.0),
    "GOOG": ("Alphabet Inc. Class C", 171.0),
    "META": ("Meta Platforms, Inc.", 480.0),
    "TSLA": ("Tesla, Inc.", 200.0),
    "AVGO": ("Broadcom Inc.", 1400.0),
    "COST": ("Costco Wholesale Corporation", 800.0),
    "NFLX": ("Netflix, Inc.", 620.0),
    "AMD": ("Advanced Micro Devices, Inc.", 160.0),
    "PEP": ("PepsiCo, Inc.", 170.0),
    "ADBE": ("Adobe Inc.", 500.0),
    "CSCO": ("Cisco Systems, Inc.", 48.0),
    "INTC": ("Intel Corporation", 31.0),
    "CMCSA": ("Comcast Corporation", 39.0),
    "QCOM": ("QUALCOMM Incorporated", 200.0),
    "TXN": ("Texas Instruments Incorporated", 195.0),
    "AMGN": ("Amgen Inc.", 300.0),
    "INTU": ("Intuit Inc.", 630.0),
    "HON": ("Honeywell International Inc.", 200.0),
    "AMAT": ("Applied Materials, Inc.", 230.0),
    "BKNG": ("Booking Holdings Inc.", 3900.0),
    "ISRG": ("Intuitive Surgical, Inc.", 400.0),
    "SBUX": ("Starbucks Corporation", 80.0),
    "GILD": ("Gilead Sciences, Inc.", 65.0),
    "MDLZ": ("Mondelez International, Inc.", 68.0),
    "ADI": ("Analog Devices, Inc.", 230.0),
    "VRTX": ("Vertex Pharmaceuticals Incorporated", 470.0),
    "REGN": ("Regeneron Pharmaceuticals, Inc.", 1000.0),
    "LRCX": ("Lam Research Corporation", 940.0),
    "MU": ("Micron Technology, Inc.", 130.0),
    "PYPL": ("PayPal Holdings, Inc.", 63.0),
    "ADP": ("Automatic Data Processing, Inc.", 245.0),
    "PANW": ("Palo Alto Networks, Inc.", 320.0),
    "KLAC": ("KLA Corporation", 800.0),
    "SNPS": ("Synopsys, Inc.", 560.0),
    "CDNS": ("Cadence Design Systems, Inc.", 290.0),
    "MAR": ("Marriott International, Inc.", 235.0),
    "ORLY": ("O'Reilly Automotive, Inc.", 1000.0),
    "MRVL": ("Marvell Technology, Inc.", 70.0),
    "ABNB": ("Airbnb, Inc.", 145.0),
    "CRWD": ("CrowdStrike Holdings, Inc.", 340.0),
    "FTNT": ("Fortinet, Inc.", 60.0),
    "WDAY": ("Workday, Inc.", 240.0),
    "DXCM": ("DexCom, Inc.", 115.0),
    "ZS": ("Zscaler, Inc.", 180.0),
    "TEAM": ("Atlassian Corporation", 170.0),
    "DDOG": ("Datadog, Inc.", 120.0),
    "PDD": ("PDD Holdings Inc.", 150.0),
    "MELI": ("MercadoLibre, Inc.", 1700.0),
    "ASML": ("ASML Holding N.V.", 950.0),
    "SMCI": ("Super Micro Computer, Inc.", 800.0),
    "COIN": ("Coinbase Global, Inc.", 230.0),
    "PLTR": ("Palantir Technologies Inc.", 22.0),
    "MSTR": ("MicroStrategy Incorporated", 1500.0),
    "TLDE": ("Tilde ~m~12~m~ Holdings (framing test)", 42.0),
    "QQQ": ("Invesco QQQ Trust, Series 1", 450.0),
    "TQQQ": ("ProShares UltraPro QQQ", 60.0),
}

_NYSE = {
    "JPM": ("JPMorgan Chase & Co.", 200.0),
    "V": ("Visa Inc.", 275.0),
    "JNJ": ("Johnson & Johnson", 150.0),
    "WMT": ("Walmart Inc.", 65.0),
    "PG": ("Procter & Gamble Company", 165.0),
    "MA": ("Mastercard Incorporated", 450.0),
    "XOM": ("Exxon Mobil Corporation", 115.0),
    "HD": ("Home Depot, Inc.", 340.0),
    "CVX": ("Chevron Corporation", 160.0),
    "KO": ("Coca-Cola Company", 62.0),
    "MRK": ("Merck & Co., Inc.", 128.0),
    "ABBV": ("AbbVie Inc.", 170.0),
    "BAC": ("Bank of America Corporation", 39.0),
    "PFE": ("Pfizer Inc.", 28.0),
    "DIS": ("Walt Disney Company", 100.0),
    "ORCL": ("Oracle Corporation", 125.0),
    "CRM": ("Salesforce, Inc.", 270.0),
    "MCD": ("McDonald's Corporation", 260.0),
    "NKE": ("NIKE, Inc.", 95.0),
    "T": ("AT&T Inc.", 17.0),
    "VZ": ("Verizon Communications Inc.", 40.0),
    "IBM": ("International Business Machines Corporation", 170.0),
    "GE": ("GE Aerospace", 160.0),
    "CAT": ("Caterpillar Inc.", 340.0),
    "BA": ("Boeing Company", 180.0),
    "GS": ("Goldman Sachs Group, Inc.", 460.0),
    "MS": ("Morgan Stanley", 97.0),
    "WFC": ("Wells Fargo & Company", 59.0),
    "C": ("Citigroup Inc.", 62.0),
    "UNH": ("UnitedHealth Group Incorporated", 490.0),
    "LLY": ("Eli Lilly and Company", 800.0),
    "BRK.A": ("Berkshire Hathaway Inc. Class A", 610000.0),
    "BRK.B": ("Berkshire Hathaway Inc. Class B", 405.0),
    "TSM": ("Taiwan Semiconductor Manufacturing Company Limited", 150.0),
    "BABA": ("Alibaba Group Holding Limited", 78.0),
    "SHOP": ("Shopify Inc.", 65.0),
    "UBER": ("Uber Technologies, Inc.", 70.0),
    "F": ("Ford Motor Company", 12.0),
    "GM": ("General Motors Company", 45.0),
    "SPOT": ("Spotify Technology S.A.", 300.0),
    "SNOW": ("Snowflake Inc.", 150.0),
    "NOW": ("ServiceNow, Inc.", 720.0),
    "AXP": ("American Express Company", 230.0),
    "BLK": ("BlackRock, Inc.", 780.0),
    "SPY": ("SPDR S&P 500 ETF Trust", 530.0),
    "DIA": ("SPDR Dow Jones Industrial Average ETF", 390.0),
    "GLD": ("SPDR Gold Shares", 215.0),
    "XLF": ("Financial Select Sector SPDR Fund", 41.0),
    "XLE": ("Energy Select Sector SPDR Fund", 92.0),
    "RKT": ("Rocket Companies, Inc. 🚀 (astral test)", 14.0),
}

_NSE = {
    "RELIANCE": ("Reliance Industries Limited", 2900.0),
    "TCS": ("Tata Consultancy Services Limited", 3800.0),
    "HDFCBANK": ("HDFC Bank Limited", 1550.0),
    "INFY": ("Infosys Limited", 1450.0),
    "ICICIBANK": ("ICICI Bank Limited", 1100.0),
    "HINDUNILVR": ("Hindustan Unilever Limited", 2400.0),
    "ITC": ("ITC Limited", 430.0),
    "SBIN": ("State Bank of India", 820.0),
    "BHARTIARTL": ("Bharti Airtel Limited", 1350.0),
    "KOTAKBANK": ("Kotak Mahindra Bank Limited", 1700.0),
    "LT": ("Larsen & Toubro Limited", 3500.0),
    "AXISBANK": ("Axis Bank Limited", 1150.0),
    "ASIANPAINT": ("Asian Paints Limited", 2900.0),
    "MARUTI": ("Maruti Suzuki India Limited", 12500.0),
    "SUNPHARMA": ("Sun Pharmaceutical Industries Limited", 1500.0),
    "TITAN": ("Titan Company Limited", 3400.0),
    "ULTRACEMCO": ("UltraTech Cement Limited", 10000.0),
    "BAJFINANCE": ("Bajaj Finance Limited", 7000.0),
    "WIPRO": ("Wipro Limited", 480.0),
    "NESTLEIND": ("Nestle India Limited", 2500.0),
    "HCLTECH": ("HCL Technologies Limited", 1400.0),
    "TATAMOTORS": ("Tata Motors Limited", 950.0),
    "TATASTEEL": ("Tata Steel Limited", 165.0),
    "POWERGRID": ("Power Grid Corporation of India Limited", 300.0),
    "NTPC": ("NTPC Limited", 360.0),
    "ONGC": ("Oil and Natural Gas Corporation Limited", 270.0),
    "COALINDIA": ("Coal India Limited", 460.0),
    "ADANIENT": ("Adani Enterprises Limited", 3100.0),
    "ADANIPORTS": ("Adani Ports and Special Economic Zone Limited", 1400.0),
    "JSWSTEEL": ("JSW Steel Limited", 900.0),
    "GRASIM": ("Grasim Industries Limited", 2400.0),
    "TECHM": ("Tech Mahindra Limited", 1300.0),
    "HDFCLIFE": ("HDFC Life Insurance Company Limited", 580.0),
    "SBILIFE": ("SBI Life Insurance Company Limited", 1450.0),
    "BRITANNIA": ("Britannia Industries Limited", 5000.0),
    "CIPLA": ("Cipla Limited", 1450.0),
    "DRREDDY": ("Dr. Reddy's Laboratories Limited", 6000.0),
    "EICHERMOT": ("Eicher Motors Limited", 4600.0),
    "HEROMOTOCO": ("Hero MotoCorp Limited", 5000.0),
    "BAJAJ_AUTO": ("Bajaj Auto Limited", 9000.0),
    "APOLLOHOSP": ("Apollo Hospitals Enterprise Limited", 6000.0),
    "DIVISLAB": ("Divi's Laboratories Limited", 4200.0),
    "INDUSINDBK": ("IndusInd Bank Limited", 1450.0),
    "M_M": ("Mahindra & Mahindra Limited", 2500.0),
    "ZOMATO": ("Zomato Limited", 190.0),
    "IRCTC": ("Indian Railway Catering and Tourism Corporation Limited", 1000.0),
    "JUNIPER": ("Juniper Hotels Limited", 480.0),
    "YESBANK": ("Yes Bank Limited", 24.0),
    "IDEA": ("Vodafone Idea Limited", 16.0),
    "PNB": ("Punjab National Bank", 125.0),
}

_CRYPTO_BASES = {
    "BTC": ("Bitcoin", 65000.0),
    "ETH": ("Ethereum", 3400.0),
    "BNB": ("BNB", 580.0),
    "SOL": ("Solana", 150.0),
    "XRP": ("XRP", 0.52),
    "ADA": ("Cardano", 0.45),
    "DOGE": ("Dogecoin", 0.15),
    "AVAX": ("Avalanche", 35.0),
    "DOT": ("Polkadot", 7.0),
    "LINK": ("Chainlink", 16.0),
    "MATIC": ("Polygon", 0.7),
    "LTC": ("Litecoin", 85.0),
    "TRX": ("TRON", 0.12),
    "ATOM": ("Cosmos", 8.5),
    "UNI": ("Uniswap", 10.0),
    "NEAR": ("NEAR Protocol", 6.5),
    "APT": ("Aptos", 9.0),
    "ARB": ("Arbitrum", 1.1),
    "OP": ("Optimism", 2.4),
    "PEPE": ("Pepe", 0.000012),
}

_FX_PAIRS = [
    "EURUSD",
    "GBPUSD",
    "USDJPY",
    "USDCHF",
    "AUDUSD",
    "USDCAD",
    "NZDUSD",
    "EURGBP",
    "EURJPY",
    "GBPJPY",
    "EURCHF",
    "AUDJPY",
    "EURAUD",
    "EURCAD",
    "GBPCHF",
    "CADJPY",
    "CHFJPY",
    "AUDNZD",
    "USDINR",
    "USDSGD",
    "USDHKD",
    "USDMXN",
    "USDZAR",
    "USDTRY",
    "XAUUSD",
    "XAGUSD",
]

_FX_PRICES = {
    "USDJPY": 155.0,
    "EURJPY": 168.0,
    "GBPJPY": 198.0,
    "AUDJPY": 103.0,
    "CADJPY": 113.0,
    "CHFJPY": 171.0,
    "USDINR": 83.4,
    "USDMXN": 17.0,
    "USDZAR": 18.3,
    "USDTRY": 32.2,
    "XAUUSD": 2350.0,
    "XAGUSD": 29.5,
    "GBPUSD": 1.27,
    "EURUSD": 1.08,
    "USDCHF": 0.9,
    "USDSGD": 1.35,
    "USDHKD": 7.81,
}

# (exchange, root, description, price, pricescale, currency, calendar)
_FUTURES = [
    ("CME_MINI", "ES", "E-mini S&P 500 Futures", 5300.0, 4, "USD", _CME),
    ("CME_MINI", "NQ", "E-mini Nasdaq-100 Futures", 18700.0, 4, "USD", _CME),
    ("CME_MINI", "RTY", "E-mini Russell 2000 Futures", 2050.0, 10, "USD", _CME),
    ("CBOT_MINI", "YM", "E-mini Dow Futures", 39000.0, 1, "USD", _CME),
    ("CME", "6E", "Euro FX Futures", 1.085, 100000, "USD", _CME),
    ("CME", "6J", "Japanese Yen Futures", 0.0064, 10000000, "USD", _CME),
    ("CME", "BTC", "Bitcoin Futures", 65500.0, 1, "USD", _CME),
    ("CME", "LE", "Live Cattle Futures", 180.0, 1000, "USD", _CME),
    ("COMEX", "GC", "Gold Futures", 2360.0, 10, "USD", _CME),
    ("COMEX", "SI", "Silver Futures", 29.8, 1000, "USD", _CME),
    ("COMEX", "HG", "Copper Futures", 4.6, 10000, "USD", _CME),
    ("NYMEX", "CL", "Crude Oil Futures", 78.0, 100, "USD", _CME),
    ("NYMEX", "NG", "Natural Gas Futures", 2.6, 1000, "USD", _CME),
    ("NYMEX", "RB", "RBOB Gasoline Futures", 2.45, 10000, "USD", _CME),
    ("CBOT", "ZC", "Corn Futures", 450.0, 4, "USX", _CME),
    ("CBOT", "ZW", "Wheat Futures", 620.0, 4, "USX", _CME),
    ("CBOT", "ZS", "Soybean Futures", 1180.0, 4, "USX", _CME),
    ("CBOT", "ZN", "10 Year T-Note Futures", 109.5, 64, "USD", _CME),
    ("MCX", "CRUDEOIL", "Crude Oil Futures", 6500.0, 1, "INR", _MCX),
    ("MCX", "GOLD", "Gold Futures", 71000.0, 1, "INR", _MCX),
    ("MCX", "SILVER", "Silver Futures", 88000.0, 1, "INR", _MCX),
    ("MCX", "NATURALGAS", "Natural Gas Futures", 220.0, 10, "INR", _MCX),
    ("MCX", "COPPER", "Copper Futures", 850.0, 20, "INR", _MCX),
    ("MCX", "ZINC", "Zinc Futures", 260.0, 20, "INR", _MCX),
    ("NSE", "NIFTY", "Nifty 50 Index Futures", 22500.0, 20, "INR", _INDIA),
    ("NSE", "BANKNIFTY", "Nifty Bank Index Futures", 48500.0, 20, "INR", _INDIA),
]

# (exchange, symbol, description, price, currency, calendar, country)
_INDICES = [
    ("SP", "SPX", "S&P 500", 5300.0, "USD", _US, "US"),
    ("NASDAQ", "NDX", "Nasdaq 100 Index", 18600.0, "USD", _US, "US"),
    ("NASDAQ", "IXIC", "Nasdaq Composite Index", 16800.0, "USD", _US, "US"),
    ("DJ", "DJI", "Dow Jones Industrial Average Index", 39000.0, "USD", _US, "US"),
    ("TVC", "RUT", "US Small Cap 2000 Index", 2050.0, "USD", _US, "US"),
    ("TVC", "DXY", "U.S. Dollar Index", 104.5, "USD", _FX, ""),
    ("TVC", "VIX", "Volatility S&P 500 Index", 13.0, "USD", _US, "US"),
    ("TVC", "US10Y", "US 10 Year Government Bonds Yield", 4.4, "USD", _US, "US"),
    ("NSE", "NIFTY", "Nifty 50 Index", 22500.0, "INR", _INDIA, "IN"),
    ("NSE", "BANKNIFTY", "Nifty Bank Index", 48400.0, "INR", _INDIA, "IN"),
    ("NSE", "CNXIT", "Nifty IT Index", 34000.0, "INR", _INDIA, "IN"),
    ("BSE", "SENSEX", "S&P BSE Sensex Index", 74000.0, "INR", _INDIA, "IN"),
    ("XETR", "DAX", "DAX Index", 18500.0, "EUR", _XETR, "DE"),
    ("TVC", "UKX", "UK 100 Index", 8200.0, "GBP", _LSE, "GB"),
    ("TVC", "NI225", "Nikkei 225 Index", 38500.0, "JPY", _KRX, "JP"),
    ("KRX", "KOSPI", "KOSPI Composite Index", 2700.0, "KRW", _KRX, "KR"),
]


def _build() -> list[Instrument]:
    out: list[Instrument] = []
    for sym, (desc, price) in _NASDAQ.items():
        kind = "fund" if sym in ("QQQ", "TQQQ") else "stock"
        out.append(
            _make(
                "NASDAQ",
                sym,
                desc,
                kind,
                "USD",
                _US,
                100,
                price,
                5e7,
                country="US",
                typespecs=("common",) if kind == "stock" else ("etf",),
            )
        )
    for sym, (desc, price) in _NYSE.items():
        kind = "fund" if sym in ("SPY", "DIA", "GLD", "XLF", "XLE") else "stock"
        out.append(
            _make(
                "NYSE",
                sym,
                desc,
                kind,
                "USD",
                _US,
                100,
                price,
                2e7,
                country="US",
                typespecs=("common",) if kind == "stock" else ("etf",),
            )
        )
    for sym in ("SPCE", "UAMY", "GSAT", "NAK", "SENS"):
        out.append(
            _make("AMEX", sym, f"{sym} Corp.", "stock", "USD", _US, 100, None, 1e6, country="US")
        )
    for sym, (desc, price) in _NSE.items():
        out.append(
            _make(
                "NSE",
                sym,
                desc,
                "stock",
                "INR",
                _INDIA,
                100,
                price,
                8e6,
                country="IN",
                delayed=True,
                typespecs=("common",),
            )
        )
    for sym in ("RELIANCE", "TCS", "INFY", "SBIN", "ITC", "HDFCBANK", "WIPRO", "TATASTEEL"):
        desc, price = _NSE[sym]
        out.append(
            _make(
                "BSE",
                sym,
                desc,
                "stock",
                "INR",
                _INDIA,
                100,
                price,
                1e6,
                country="IN",
                delayed=True,
            )
        )
    for base, (name, price) in _CRYPTO_BASES.items():
        scale = 100 if price >= 10 else (10_000 if price >= 0.01 else 100_000_000)
        for quote in ("USDT", "BTC") if base != "BTC" else ("USDT", "USDC", "BUSD"):
            qprice = price if quote != "BTC" else price / 65000.0
            qscale = scale if quote != "BTC" else 100_000_000
            out.append(
                _make(
                    "BINANCE",
                    f"{base}{quote}",
                    f"{name} / {quote}",
                    "spot",
                    quote,
                    _CRYPTO,
                    qscale,
                    qprice,
                    2e4 * 65000.0 / max(price, 1e-9) / 50,
                    volume_decimals=5,
                    years=(2017, 2020),
                    typespecs=("crypto",),
                )
            )
        out.append(
            _make(
                "BINANCE",
                f"{base}USDT.P",
                f"{name} / TetherUS PERPETUAL CONTRACT",
                "swap",
                "USDT",
                _CRYPTO,
                scale,
                price,
                5e4 * 65000.0 / max(price, 1e-9) / 50,
                volume_decimals=3,
                years=(2019, 2021),
                typespecs=("crypto", "perpetual"),
            )
        )
    for base in ("BTC", "ETH", "XRP", "LTC", "LINK"):
        name, price = _CRYPTO_BASES[base]
        for quote in ("USD", "EUR"):
            out.append(
                _make(
                    "BITSTAMP",
                    f"{base}{quote}",
                    f"{name} / {quote}",
                    "spot",
                    quote,
                    _CRYPTO,
                    100 if price >= 10 else 100_000,
                    price,
                    800 * 65000.0 / price / 50,
                    volume_decimals=8,
                    years=(2013, 2016),
                    typespecs=("crypto",),
                )
            )
    for base in ("BTC", "ETH", "SOL", "DOGE"):
        name, price = _CRYPTO_BASES[base]
        out.append(
            _make(
                "COINBASE",
                f"{base}USD",
                f"{name} / U.S. Dollar",
                "spot",
                "USD",
                _CRYPTO,
                100 if price >= 10 else 100_000,
                price,
                1e3 * 65000.0 / price / 50,
                volume_decimals=8,
                years=(2015, 2018),
                typespecs=("crypto",),
            )
        )
    for pair in _FX_PAIRS:
        price = _FX_PRICES.get(pair, 1.0 + (_seed(pair) % 60) / 100.0)
        scale = 1000 if price > 20 else 100_000
        kind = "commodity" if pair.startswith(("XAU", "XAG")) else "forex"
        desc = f"{pair[:3]} / {pair[3:]}"
        out.append(
            _make("OANDA", pair, desc, kind, pair[3:], _FX, scale, price, 1e5, years=(2002, 2005))
        )
        out.append(
            _make("FX", pair, desc, kind, pair[3:], _FX, scale, price, 2e5, years=(2001, 2004))
        )
    for exchange, root, desc, price, scale, currency, cal in _FUTURES:
        for n in (1, 2):
            label = "Continuous: Current Contract" if n == 1 else "Continuous: Next Contract"
            out.append(
                _make(
                    exchange,
                    f"{root}{n}!",
                    f"{desc} ({label})",
                    "futures",
                    currency,
                    cal,
                    scale,
                    price * (1 + 0.004 * (n - 1)),
                    2e5,
                    years=(1998, 2008),
                    root=root,
                    delayed=exchange in ("MCX", "CME", "COMEX", "NYMEX", "CBOT", "NSE"),
                    typespecs=("continuous",),
                )
            )
    for exchange, sym, desc, price, currency, cal, country in _INDICES:
        out.append(
            _make(
                exchange,
                sym,
                desc,
                "index",
                currency,
                cal,
                100,
                price,
                None,
                country=country,
                years=(1985, 1995),
                delayed=exchange in ("NSE", "BSE", "DJ"),
            )
        )
    out.append(
        _make(
            "KRX",
            "005930",
            "SAMSUNG ELECTRONICS CO., LTD",
            "stock",
            "KRW",
            _KRX,
            1,
            78000.0,
            1.5e7,
            country="KR",
            local_description="삼성전자보통주",
            delayed=True,
        )
    )
    out.append(
        _make(
            "KRX",
            "000660",
            "SK HYNIX INC.",
            "stock",
            "KRW",
            _KRX,
            1,
            190000.0,
            3e6,
            country="KR",
            local_description="SK하이닉스",
            delayed=True,
        )
    )
    for sym, desc, price in (
        ("SAP", "SAP SE", 175.0),
        ("SIE", "Siemens AG", 180.0),
        ("BMW", "Bayerische Motoren Werke AG", 95.0),
    ):
        out.append(
            _make(
                "XETR",
                sym,
                desc,
                "stock",
                "EUR",
                _XETR,
                100,
                price,
                2e6,
                country="DE",
                delayed=True,
            )
        )
    for sym, desc, price in (
        ("HSBA", "HSBC Holdings plc", 680.0),
        ("BP.", "BP p.l.c.", 480.0),
        ("VOD", "Vodafone Group Plc", 72.0),
    ):
        out.append(
            _make(
                "LSE", sym, desc, "stock", "GBX", _LSE, 100, price, 3e7, country="GB", delayed=True
            )
        )
    for sym, desc, price in (
        ("VCB", "Joint Stock Commercial Bank for Foreign Trade of Vietnam", 90000.0),
        ("FPT", "FPT Corporation", 130000.0),
    ):
        out.append(
            _make(
                "HOSE", sym, desc, "stock", "VND", _HOSE, 1, price, 2e6, country="VN", delayed=True
            )
        )
    return out


class Catalogue:
    """A read-only set of instruments, looked up by ``"EX:SYM"`` (case-sensitive, like the server).

    Immutable after construction; safe to share between threads.
    """

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        self._by_name: dict[str, Instrument] = {}
        for inst in instruments:
            self._by_name[inst.full_name] = inst

    def get(self, full_name: str) -> Instrument | None:
        """The instrument named ``full_name`` (``"EX:SYM"``), or ``None``."""
        return self._by_name.get(full_name)

    def __contains__(self, full_name: object) -> bool:
        return full_name in self._by_name

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        """All ``"EX:SYM"`` names, in catalogue order."""
        return list(self._by_name)

    def exchanges(self) -> list[str]:
        """The exchanges present, sorted."""
        return sorted({inst.exchange for inst in self._by_name.values()})


_DEFAULT: Catalogue | None = None


def default_catalogue() -> Catalogue:
    """The built-in catalogue (a few hundred instruments), built once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Catalogue(_build())
    return _DEFAULT
