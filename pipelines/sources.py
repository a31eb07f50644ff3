"""Public data sets -> the contract: pure converters from raw lines or text cells to tables.

Each converter takes what `pipelines.io` read (lines, or frames whose cells are all text) and
returns a `SourceConversion`: the contract tables the source has, plus a quarantine frame
holding every input record that could not be used, with its original fields and a `reason`.
Nothing is dropped silently: `lines_in == accepted + quarantined` is checked on construction,
and records folded into another (same invoice and stock code) are counted as `merged`.

Supported sources
- CDNOW (`convert_cdnow`): `customer_id YYYYMMDD cds dollars`, or the 5-column
  `CDNOW_sample.txt` layout `master_id sample_id YYYYMMDD cds dollars`; whitespace-separated,
  optional header line. One line is one order of the single product "cd".
- UCI Online Retail and Online Retail II (`convert_online_retail`): CSV or every sheet of
  the workbook. Invoices starting with "C" are returns.
- MovieLens (`convert_movielens`): `u.data`, `ratings.csv`, `ratings.dat` and RecBole
  `.inter`. Every rating is one interaction of quantity 1 at price 0 (the rating value
  itself has no place in the contract).

Blank lines carry no record and are neither counted nor quarantined (`blank_lines`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features import schema
from pipelines.errors import UserError

# ---------------------------------------------------------------------------
# Non-contract column names: the source formats' own, and the quarantine's.
# ---------------------------------------------------------------------------
REASON = "reason"
LINE_NUMBER = "line_number"  # 1-based line of the input file
LINE = "line"  # the raw line, as read
SOURCE_SHEET = "source_sheet"  # workbook sheet (Online Retail .xlsx only)
SOURCE_ROW = "source_row"  # 1-based row in the file or sheet, the header being row 1

# CDNOW header names (a header line is optional).
CDNOW_CUSTOMER_ID = "customer_id"
CDNOW_MASTER_ID = "master_id"
CDNOW_SAMPLE_ID = "sample_id"
CDNOW_DATE = "date"
CDNOW_CDS = "number_of_cds"
CDNOW_DOLLARS = "dollar_value"
CDNOW_LAYOUTS: dict[int, tuple[str, ...]] = {
    4: (CDNOW_CUSTOMER_ID, CDNOW_DATE, CDNOW_CDS, CDNOW_DOLLARS),
    5: (CDNOW_MASTER_ID, CDNOW_SAMPLE_ID, CDNOW_DATE, CDNOW_CDS, CDNOW_DOLLARS),
}

# Online Retail (I uses InvoiceNo/UnitPrice/CustomerID; II uses Invoice/Price/Customer ID).
RETAIL_INVOICE = "Invoice"
RETAIL_INVOICE_NO = "InvoiceNo"
RETAIL_STOCK_CODE = "StockCode"
RETAIL_DESCRIPTION = "Description"
RETAIL_QUANTITY = "Quantity"
RETAIL_INVOICE_DATE = "InvoiceDate"
RETAIL_PRICE = "Price"
RETAIL_UNIT_PRICE = "UnitPrice"
RETAIL_CUSTOMER_ID = "Customer ID"
RETAIL_CUSTOMER_ID_I = "CustomerID"
RETAIL_COUNTRY = "Country"
# canonical field -> the header spellings accepted for it (compared without case or spaces)
RETAIL_COLUMNS: dict[str, tuple[str, ...]] = {
    RETAIL_INVOICE: (RETAIL_INVOICE, RETAIL_INVOICE_NO),
    RETAIL_STOCK_CODE: (RETAIL_STOCK_CODE,),
    RETAIL_DESCRIPTION: (RETAIL_DESCRIPTION,),
    RETAIL_QUANTITY: (RETAIL_QUANTITY,),
    RETAIL_INVOICE_DATE: (RETAIL_INVOICE_DATE,),
    RETAIL_PRICE: (RETAIL_PRICE, RETAIL_UNIT_PRICE),
    RETAIL_CUSTOMER_ID: (RETAIL_CUSTOMER_ID, RETAIL_CUSTOMER_ID_I),
    RETAIL_COUNTRY: (RETAIL_COUNTRY,),
}
RETAIL_OPTIONAL_COLUMNS = (RETAIL_DESCRIPTION, RETAIL_COUNTRY)
RETAIL_RETURN_PREFIX = "C"

# MovieLens: ratings.csv header names and RecBole .inter field names (before ":type").
ML_USER_ID = "userId"
ML_MOVIE_ID = "movieId"
ML_RATING = "rating"
ML_TIMESTAMP = "timestamp"
ML_LAYOUT_FIELDS = (ML_USER_ID, ML_MOVIE_ID, ML_RATING, ML_TIMESTAMP)
INTER_USER_ID = "user_id"
INTER_ITEM_ID = "item_id"
INTER_RATING = "rating"
INTER_TIMESTAMP = "timestamp"
INTER_TYPED_FIELD = re.compile(r"^\w+:(token|token_seq|float|float_seq)$")

# ---------------------------------------------------------------------------
# What the converters put in the contract.
# ---------------------------------------------------------------------------
CDNOW_PRODUCT_ID = "cd"
CDNOW_CATEGORY = "music"
CDNOW_CHANNEL = "other"
RETAIL_CHANNEL = "web"
MOVIELENS_CATEGORY = "movie"
MOVIELENS_CHANNEL = "web"
TIMESTAMP_DTYPE = "datetime64[us]"
LATEST_UNIX_SECONDS = 253_402_300_799  # 9999-12-31 23:59:59

# Online Retail has no category column. The rule, first match wins:
# 1. stock codes that are not merchandise (postage, fees, manual lines, discounts, samples,
#    gift vouchers, tests) -> "service"; they are kept so spend matches the invoices, and a
#    recommender can leave the category out;
# 2. a whole-word keyword in the product's most frequent description, in this order;
# 3. otherwise "other".
RETAIL_SERVICE_CATEGORY = "service"
RETAIL_FALLBACK_CATEGORY = "other"
# fmt: off
RETAIL_SERVICE_STOCK_CODES = frozenset({
    "POST", "DOT", "C2", "M", "D", "S", "B", "CRUK", "PADS", "BANK CHARGES", "AMAZONFEE",
    "ADJUST", "ADJUST2",
})
RETAIL_SERVICE_STOCK_CODE_PREFIXES = ("GIFT_", "TEST")
RETAIL_CATEGORY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("christmas", ("CHRISTMAS", "XMAS", "ADVENT", "SANTA", "REINDEER", "SNOWFLAKE", "NATIVITY")),
    ("lighting", ("LIGHT", "LIGHTS", "T-LIGHT", "TEALIGHT", "LANTERN", "CANDLE", "CANDLES",
                  "LAMP", "NIGHTLIGHT")),
    ("bags", ("BAG", "BAGS", "PURSE", "SHOPPER", "TOTE", "RUCKSACK", "BACKPACK")),
    ("kitchen", ("MUG", "MUGS", "CUP", "CUPS", "TEACUP", "TEAPOT", "PLATE", "PLATES", "BOWL",
                 "BOWLS", "CAKE", "CAKESTAND", "CAKE CASES", "LUNCH", "JAR", "JARS", "CUTLERY",
                 "BAKING", "NAPKINS", "SPOON", "SPOONS", "TRAY", "TEA", "COFFEE", "JUG",
                 "TUMBLER", "BEAKER", "APRON", "OVEN", "KITCHEN", "PANTRY", "TIN", "TINS")),
    ("stationery", ("CARD", "CARDS", "PAPER", "NOTEBOOK", "NOTEBOOKS", "PEN", "PENS", "PENCIL",
                    "PENCILS", "WRAP", "STICKER", "STICKERS", "CHALK", "ENVELOPE", "ENVELOPES",
                    "TAPE", "ERASER", "STATIONERY", "DIARY")),
    ("toys", ("TOY", "TOYS", "GAME", "GAMES", "DOLL", "DOLLS", "PUZZLE", "JIGSAW", "SKIPPING",
              "BALLOON", "BALLOONS", "PLAYHOUSE", "SOLDIER", "TEDDY", "SPINNING")),
    ("jewellery", ("NECKLACE", "BRACELET", "EARRINGS", "RING", "BROOCH", "CHARM", "HAIRCLIP",
                   "HAIR", "BEADS")),
    ("garden", ("GARDEN", "PLANT", "PLANTER", "FLOWER POT", "WATERING", "BIRD", "FEEDER")),
    ("home_decor", ("FRAME", "SIGN", "CLOCK", "CUSHION", "ORNAMENT", "WREATH", "DOORMAT",
                    "MIRROR", "VASE", "HEART", "GARLAND", "BUNTING", "DECORATION", "HOOK",
                    "HOOKS", "DRAWER", "DOORSTOP", "COAT", "HANGING", "PLAQUE", "BLANKET",
                    "THROW", "HOT WATER BOTTLE", "BOX", "BOXES", "BASKET", "STORAGE")),
)
# fmt: on

# ---------------------------------------------------------------------------
# Quarantine reasons, so tests and reports can name them.
# ---------------------------------------------------------------------------
REASON_BAD_DATE = "bad date"
REASON_CDS_NOT_NUMBER = "number_of_cds is not a whole number"
REASON_DOLLARS_NOT_NUMBER = "dollar_value is not a number"
REASON_ZERO_CDS_POSITIVE_DOLLARS = "zero cds with positive dollars"
REASON_ZERO_CDS = "zero cds"
REASON_NEGATIVE_CDS = "negative number_of_cds"
REASON_NEGATIVE_DOLLARS = "negative dollar_value"
REASON_MISSING_CUSTOMER = "missing customer id"
REASON_MISSING_INVOICE_OR_STOCK_CODE = "missing invoice or stock code"
REASON_QUANTITY_NOT_NUMBER = "quantity is not a whole number"
REASON_ZERO_QUANTITY = "zero quantity"
REASON_NEGATIVE_SALE = "negative quantity on a sale invoice"
REASON_POSITIVE_RETURN = "positive quantity on a return invoice"
REASON_PRICE_NOT_NUMBER = "price is not a number"
REASON_PRICE_NOT_POSITIVE = "price <= 0"
REASON_INVOICE_SEVERAL_CUSTOMERS = "invoice has several customer ids"
REASON_MISSING_USER_OR_ITEM = "missing user or item id"
REASON_TIMESTAMP_NOT_NUMBER = "timestamp is not a number"
REASON_TIMESTAMP_OUT_OF_RANGE = "timestamp out of range (1970 to 9999)"
REASON_RATING_NOT_NUMBER = "rating is not a number"
REASON_DUPLICATE_RATING = "duplicate rating (same user, item and time)"


def reason_wrong_field_count(expected: int, found: int) -> str:
    return f"expected {expected} fields, found {found}"


def reason_invoice_type(prefix: str) -> str:
    return f"invoice type {prefix!r} is neither a sale nor a return"


def reason_sheet_overlap(earlier_sheet: str) -> str:
    return f"same row already in sheet {earlier_sheet!r} (the sheets overlap)"


# ---------------------------------------------------------------------------
# The result.
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceConversion:
    """Contract tables from one source, and the records that could not be used.

    `lines_in` counts input records (data lines or rows, not headers or blank lines);
    `accepted` those that reached `transactions`, `merged` of which were folded into another
    line of the same order and product, so `len(transactions) == accepted - merged`.
    """

    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    lines_in: int
    accepted: int
    merged: int = 0
    blank_lines: int = 0
    layout: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.lines_in != self.accepted + len(self.quarantine):
            raise AssertionError(
                f"lost records: {self.lines_in} in, {self.accepted} accepted, {len(self.quarantine)} quarantined"
            )
        transactions = self.tables[schema.TRANSACTIONS]
        if len(transactions) != self.accepted - self.merged:
            raise AssertionError(
                f"{len(transactions)} transactions from {self.accepted} accepted lines and {self.merged} merges"
            )

    @property
    def quarantined(self) -> int:
        return len(self.quarantine)

    def reason_counts(self) -> dict[str, int]:
        """Quarantined records per reason, most frequent first."""
        if self.quarantine.empty:
            return {}
        counts = self.quarantine[REASON].value_counts()
        return {str(reason): int(count) for reason, count in counts.items()}

    def report(self) -> dict[str, object]:
        """The numbers for `_ingest/report.json`."""
        return {
            "layout": self.layout,
            "lines_in": self.lines_in,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "merged": self.merged,
            "blank_lines_skipped": self.blank_lines,
            "reasons": self.reason_counts(),
            "tables": {name: len(frame) for name, frame in self.tables.items()},
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------
# CDNOW
# ---------------------------------------------------------------------------
def convert_cdnow(lines: Sequence[str], source: str) -> SourceConversion:
    """CDNOW purchase log -> customers, products ("cd") and transactions (one order per line).

    The layout (4 or 5 fields) comes from the header if there is one, else from the most
    common field count. Customer ids are kept as written (zero padding included); signup is
    the first purchase date; unit_price = dollars / cds; order ids are
    `<customer>-<YYYYMMDD>-<n>`, n counting that customer's lines of that day.
    """
    numbered = _non_blank(lines)
    blank_lines = len(lines) - len(numbered)
    if numbered.empty:
        raise UserError(f"{source}: empty file (no data lines)")
    stripped = numbered.str.strip()
    fields = stripped.str.split(expand=True)
    n_fields = fields.notna().sum(axis=1)

    width = _cdnow_header_width(fields.iloc[0], int(n_fields.iloc[0]), source)
    if width is not None:  # the first line is a header
        fields, n_fields, numbered = fields.iloc[1:], n_fields.iloc[1:], numbered.iloc[1:]
        if numbered.empty:
            raise UserError(f"{source}: empty file (a header and no data lines)")
    else:
        width = _cdnow_width_from_data(n_fields, source)
    names = CDNOW_LAYOUTS[width]
    fields = fields.reindex(columns=range(width)).set_axis(names, axis=1)

    dates = pd.to_datetime(
        fields[CDNOW_DATE].where(fields[CDNOW_DATE].str.fullmatch(r"\d{8}", na=False)),
        format="%Y%m%d",
        errors="coerce",
    )
    cds = pd.to_numeric(fields[CDNOW_CDS], errors="coerce")
    dollars = pd.to_numeric(fields[CDNOW_DOLLARS], errors="coerce")
    reasons = _first_reason(
        numbered.index,
        [
            (n_fields != width, n_fields.map(lambda n: reason_wrong_field_count(width, n))),
            (dates.isna(), REASON_BAD_DATE),
            (~_is_whole(cds), REASON_CDS_NOT_NUMBER),
            (~np.isfinite(dollars.fillna(np.nan)), REASON_DOLLARS_NOT_NUMBER),
            (cds < 0, REASON_NEGATIVE_CDS),
            (dollars < 0, REASON_NEGATIVE_DOLLARS),
            ((cds == 0) & (dollars > 0), REASON_ZERO_CDS_POSITIVE_DOLLARS),
            (cds == 0, REASON_ZERO_CDS),
        ],
    )
    ok = reasons.isna()
    customer_column = CDNOW_CUSTOMER_ID if width == 4 else CDNOW_MASTER_ID
    customer_ids = fields.loc[ok, customer_column]
    day_text = fields.loc[ok, CDNOW_DATE]
    nth_of_day = customer_ids.groupby([customer_ids, day_text], sort=False).cumcount() + 1
    quantity = cds[ok].astype("int64")
    transactions = pd.DataFrame(
        {
            schema.ORDER_ID: customer_ids + "-" + day_text + "-" + nth_of_day.astype("str"),
            schema.CUSTOMER_ID: customer_ids,
            schema.PRODUCT_ID: CDNOW_PRODUCT_ID,
            schema.QUANTITY: quantity,
            schema.UNIT_PRICE: dollars[ok] / quantity,
            schema.TIMESTAMP: dates[ok],
            schema.CHANNEL: CDNOW_CHANNEL,
        }
    )
    products = _build_products(transactions, pd.Series(CDNOW_CATEGORY, index=[CDNOW_PRODUCT_ID]))
    tables = _finish_tables(transactions, _build_customers(transactions), products)
    return SourceConversion(
        tables=tables,
        quarantine=_line_quarantine(numbered, reasons),
        lines_in=len(numbered),
        accepted=int(ok.sum()),
        blank_lines=blank_lines,
        layout=" ".join(names),
    )


def _cdnow_header_width(first: pd.Series, n_fields: int, source: str) -> int | None:
    """The header's field count if the first line is a header (no token is a number)."""
    tokens = first.dropna()
    if pd.to_numeric(tokens, errors="coerce").notna().any():
        return None
    if n_fields not in CDNOW_LAYOUTS:
        layouts = " or ".join(f"{n} ({' '.join(names)})" for n, names in CDNOW_LAYOUTS.items())
        raise UserError(f"{source}: header has {n_fields} columns, not a CDNOW log; expected {layouts}")
    return n_fields


def _cdnow_width_from_data(n_fields: pd.Series, source: str) -> int:
    counts = n_fields[n_fields.isin(list(CDNOW_LAYOUTS))].value_counts()
    if counts.empty:
        raise UserError(f"{source}: no line has 4 or 5 whitespace-separated fields; not a CDNOW log")
    best = counts[counts == counts.max()].index
    if len(best) == 1:
        return int(best[0])
    # a tie: the first line of a known width decides
    return int(n_fields[n_fields.isin(list(best))].iloc[0])


# ---------------------------------------------------------------------------
# Online Retail
# ---------------------------------------------------------------------------
def convert_online_retail(raw: pd.DataFrame | Mapping[str, pd.DataFrame], source: str) -> SourceConversion:
    """UCI Online Retail (I or II) -> customers, products, transactions.

    `raw` is one frame (a CSV) or the workbook's sheets in order; cells are text. Rows of a
    later sheet that repeat a row of an earlier sheet are quarantined (Online Retail II's two
    sheets both cover 2010-12-01..09). Lines of one invoice with the same stock code are merged
    (quantities summed, price weighted by quantity, earliest time). Customer ids lose a
    trailing ".0"; region is the country of the customer's first accepted line; signup is the
    first accepted line; product price is the median unit price of its accepted lines.
    """
    sheets = {"": raw} if isinstance(raw, pd.DataFrame) else dict(raw)
    is_workbook = not isinstance(raw, pd.DataFrame)
    originals, canonicals = [], []
    for position, (sheet_name, frame) in enumerate(sheets.items()):
        where = f"{source} sheet {sheet_name!r}" if is_workbook else source
        canonical = _canonical_retail_columns(frame, where)
        canonical[SOURCE_SHEET] = position
        original = frame.astype("str").where(frame.notna())
        original.insert(0, SOURCE_ROW, (np.arange(len(frame)) + 2).astype("str"))
        if is_workbook:
            original.insert(0, SOURCE_SHEET, sheet_name)
        originals.append(original)
        canonicals.append(canonical)
    cells = pd.concat(canonicals, ignore_index=True)
    original = pd.concat(originals, ignore_index=True)
    if cells.empty:
        raise UserError(f"{source}: empty file (a header and no data rows)")

    invoice = cells[RETAIL_INVOICE].str.strip()
    stock_code = cells[RETAIL_STOCK_CODE].str.strip()
    customer = cells[RETAIL_CUSTOMER_ID].str.strip().str.replace(r"^(\d+)\.0*$", r"\1", regex=True)
    quantity = pd.to_numeric(cells[RETAIL_QUANTITY].str.strip(), errors="coerce")
    price = pd.to_numeric(cells[RETAIL_PRICE].str.strip(), errors="coerce")
    timestamp = _parse_invoice_dates(cells[RETAIL_INVOICE_DATE])
    prefix = invoice.str.extract(r"^([A-Za-z]+)", expand=False).str.upper()
    is_return = prefix == RETAIL_RETURN_PREFIX
    sheet_names = list(sheets)
    overlap = _repeats_of_earlier_sheets(cells)

    reasons = _first_reason(
        cells.index,
        [
            (
                overlap.notna(),
                overlap.map(lambda p: reason_sheet_overlap(sheet_names[int(p)]) if pd.notna(p) else None),
            ),
            (_blank(invoice) | _blank(stock_code), REASON_MISSING_INVOICE_OR_STOCK_CODE),
            (_blank(customer), REASON_MISSING_CUSTOMER),
            (prefix.notna() & ~is_return, prefix.map(reason_invoice_type, na_action="ignore")),
            (~_is_whole(quantity), REASON_QUANTITY_NOT_NUMBER),
            (quantity == 0, REASON_ZERO_QUANTITY),
            (~is_return & (quantity < 0), REASON_NEGATIVE_SALE),
            (is_return & (quantity > 0), REASON_POSITIVE_RETURN),
            (~np.isfinite(price.fillna(np.nan)), REASON_PRICE_NOT_NUMBER),
            (price <= 0, REASON_PRICE_NOT_POSITIVE),
            (timestamp.isna(), REASON_BAD_DATE),
        ],
    )
    # An invoice is one customer's; if its lines disagree, no line of it can be trusted.
    ok = reasons.isna()
    several = customer[ok].groupby(invoice[ok]).transform("nunique") > 1
    reasons[several[several].index] = REASON_INVOICE_SEVERAL_CUSTOMERS
    ok = reasons.isna()

    lines = pd.DataFrame(
        {
            schema.ORDER_ID: invoice[ok],
            schema.CUSTOMER_ID: customer[ok],
            schema.PRODUCT_ID: stock_code[ok],
            schema.QUANTITY: quantity[ok].astype("int64"),
            schema.UNIT_PRICE: price[ok].astype("float64"),
            schema.TIMESTAMP: timestamp[ok],
            schema.CHANNEL: RETAIL_CHANNEL,
        }
    )
    transactions = _merge_order_lines(lines)
    descriptions = cells.loc[ok, RETAIL_DESCRIPTION].str.strip()
    products = _build_products(lines, _retail_categories(stock_code[ok], descriptions))
    country = cells.loc[ok, RETAIL_COUNTRY].str.strip()
    customers = _build_customers(lines, regions=country)
    quarantine = original[~ok].assign(**{REASON: reasons[~ok]})
    notes = ()
    if is_workbook and len(sheets) > 1:
        notes = (f"read {len(sheets)} sheets: {', '.join(map(repr, sheet_names))}",)
    return SourceConversion(
        tables=_finish_tables(transactions, customers, products),
        quarantine=quarantine.reset_index(drop=True),
        lines_in=len(cells),
        accepted=int(ok.sum()),
        merged=len(lines) - len(transactions),
        layout="online retail " + ("II" if _is_retail_ii(sheets) else "I"),
        notes=notes,
    )


def _normalise_header(name: object) -> str:
    return re.sub(r"[\s_]+", "", str(name)).lower()


def _canonical_retail_columns(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The frame's columns renamed to the canonical names; UserError if some are missing."""
    by_normal = {_normalise_header(name): name for name in frame.columns}
    found: dict[str, object] = {}
    for canonical, spellings in RETAIL_COLUMNS.items():
        for spelling in spellings:
            if _normalise_header(spelling) in by_normal:
                found[canonical] = by_normal[_normalise_header(spelling)]
                break
    missing = [
        " or ".join(RETAIL_COLUMNS[name])
        for name in RETAIL_COLUMNS
        if name not in found and name not in RETAIL_OPTIONAL_COLUMNS
    ]
    if missing:
        raise UserError(f"{where}: not an Online Retail table; missing column(s) {', '.join(missing)}")
    canonical = pd.DataFrame(index=frame.index)
    for name in RETAIL_COLUMNS:
        values = frame[found[name]] if name in found else pd.Series(pd.NA, index=frame.index)
        canonical[name] = values.astype("str").where(values.notna())
    return canonical.reset_index(drop=True)


def _is_retail_ii(sheets: Mapping[str, pd.DataFrame]) -> bool:
    first = next(iter(sheets.values()))
    return _normalise_header(RETAIL_INVOICE) in {_normalise_header(c) for c in first.columns}


def _repeats_of_earlier_sheets(cells: pd.DataFrame) -> pd.Series:
    """For each row repeating a row of an earlier sheet, that sheet's position; else NA.

    Repeats are counted: a row present twice in sheet 1 and three times in sheet 2 leaves one
    row of sheet 2 as new.
    """
    result = pd.Series(np.nan, index=cells.index)
    fields = [name for name in RETAIL_COLUMNS]
    keys = pd.util.hash_pandas_object(cells[fields].fillna("\x00"), index=False)
    positions = cells[SOURCE_SHEET]
    for position in sorted(positions.unique())[1:]:
        earlier = keys[positions < position]
        later = keys[positions == position]
        earlier_counts = earlier.value_counts()
        occurrence = later.groupby(later).cumcount()
        repeats = occurrence < later.map(earlier_counts).fillna(0)
        if repeats.any():
            # name the latest earlier sheet holding the row
            first_sheet = (
                pd.Series(positions[positions < position].to_numpy(), index=earlier.to_numpy()).groupby(level=0).max()
            )
            result[repeats[repeats].index] = later[repeats].map(first_sheet)
    return result


def _parse_invoice_dates(values: pd.Series) -> pd.Series:
    """ISO dates ("2009-12-01 07:45:00") or d/m/y-style ones ("12/1/2010 8:26"); NaT if bad.

    Whether "1/12/2010" is day or month first is decided for the whole file: month first
    (the UCI CSV's convention) unless some date only makes sense day first.
    """
    text = values.str.strip()
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    rest = text[parsed.isna() & text.notna()]
    if rest.empty:
        return parsed.astype(TIMESTAMP_DTYPE)
    parts = rest.str.extract(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$").astype(
        "float64"
    )
    first, second = parts[0], parts[1]
    day_first = bool((first > 12).any() and not (second > 12).any())
    day, month = (first, second) if day_first else (second, first)
    pieces = pd.DataFrame(
        {
            "year": parts[2],
            "month": month,
            "day": day,
            "hour": parts[3].fillna(0),
            "minute": parts[4].fillna(0),
            "second": parts[5].fillna(0),
        }
    )
    valid = pieces[["year", "month", "day"]].notna().all(axis=1)
    other = pd.Series(pd.NaT, index=rest.index, dtype=TIMESTAMP_DTYPE)
    if valid.any():
        other[valid] = pd.to_datetime(pieces[valid], errors="coerce")
    return parsed.astype(TIMESTAMP_DTYPE).fillna(other)


def _merge_order_lines(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per (order, product): quantities summed, unit price weighted by units."""
    key = [schema.ORDER_ID, schema.PRODUCT_ID]
    if not lines.duplicated(key).any():
        return lines
    weight = lines[schema.QUANTITY].abs()
    grouped = lines.assign(_amount=lines[schema.UNIT_PRICE] * weight, _weight=weight).groupby(key, sort=False)
    merged = grouped.agg(
        **{
            schema.CUSTOMER_ID: (schema.CUSTOMER_ID, "first"),
            schema.QUANTITY: (schema.QUANTITY, "sum"),
            "_amount": ("_amount", "sum"),
            "_weight": ("_weight", "sum"),
            schema.TIMESTAMP: (schema.TIMESTAMP, "min"),
            schema.CHANNEL: (schema.CHANNEL, "first"),
        }
    ).reset_index()
    merged[schema.UNIT_PRICE] = merged["_amount"] / merged["_weight"]
    return merged[list(lines.columns)]


def _retail_categories(stock_codes: pd.Series, descriptions: pd.Series) -> pd.Series:
    """Category per stock code by the documented rule (see RETAIL_CATEGORY_KEYWORDS)."""
    pairs = pd.DataFrame({"code": stock_codes, "text": descriptions.fillna("")})
    counts = pairs.value_counts(["code", "text"]).reset_index(name="n")
    # most frequent description; ties go to the alphabetically first
    counts = counts.sort_values(["code", "n", "text"], ascending=[True, False, True])
    description = counts.drop_duplicates("code").set_index("code")["text"].str.upper()
    category = pd.Series(pd.NA, index=description.index, dtype="object")
    codes = description.index.to_series().str.upper()
    is_service = codes.isin(RETAIL_SERVICE_STOCK_CODES) | codes.str.startswith(RETAIL_SERVICE_STOCK_CODE_PREFIXES)
    category[is_service] = RETAIL_SERVICE_CATEGORY
    for name, keywords in RETAIL_CATEGORY_KEYWORDS:
        # whole words, a hyphen counting as part of a word ("T-LIGHT" is not "LIGHT")
        pattern = r"(?:^|[^\w-])(?:" + "|".join(map(re.escape, keywords)) + r")(?:$|[^\w-])"
        hit = category.isna() & description.str.contains(pattern, regex=True)
        category[hit] = name
    return category.fillna(RETAIL_FALLBACK_CATEGORY)


# ---------------------------------------------------------------------------
# MovieLens
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _RatingsLayout:
    name: str
    separator: str
    has_header: bool
    n_fields: int
    user: int
    item: int
    timestamp: int
    rating: int | None


def convert_movielens(lines: Sequence[str], source: str, file_name: str = "") -> SourceConversion:
    """MovieLens ratings -> customers (users), products (movies), transactions (one per rating).

    Layout by header, then by file name: RecBole `.inter` (typed header such as
    `user_id:token`), `ratings.csv` (`userId,movieId,rating,timestamp`), `ratings.dat`
    (`::`-separated) or `u.data` (tab-separated, no header). Each rating is its own order
    `<user>-<item>-<unix seconds>`; a repeat of the same user, item and second is quarantined.
    """
    numbered = _non_blank(lines)
    blank_lines = len(lines) - len(numbered)
    if numbered.empty:
        raise UserError(f"{source}: empty file (no data lines)")
    layout = _detect_ratings_layout(numbered.iloc[0], source, file_name)
    if layout.has_header:
        numbered = numbered.iloc[1:]
        if numbered.empty:
            raise UserError(f"{source}: empty file (a header and no data lines)")
    n_fields = numbered.str.count(re.escape(layout.separator)) + 1
    fields = numbered.str.split(layout.separator, regex=False, expand=True)
    fields = fields.reindex(columns=range(layout.n_fields))
    user = fields[layout.user].str.strip()
    item = fields[layout.item].str.strip()
    seconds = pd.to_numeric(fields[layout.timestamp].str.strip(), errors="coerce")
    rating = (
        pd.to_numeric(fields[layout.rating].str.strip(), errors="coerce")
        if layout.rating is not None
        else pd.Series(0.0, index=fields.index)
    )
    checks: list[tuple[pd.Series, str | pd.Series]] = [
        (
            n_fields != layout.n_fields,
            n_fields.map(lambda n: reason_wrong_field_count(layout.n_fields, n)),
        ),
        (_blank(user) | _blank(item), REASON_MISSING_USER_OR_ITEM),
        (~np.isfinite(seconds.fillna(np.nan)), REASON_TIMESTAMP_NOT_NUMBER),
        ((seconds < 0) | (seconds > LATEST_UNIX_SECONDS), REASON_TIMESTAMP_OUT_OF_RANGE),
        (~np.isfinite(rating.fillna(np.nan)), REASON_RATING_NOT_NUMBER),
    ]
    reasons = _first_reason(numbered.index, checks)
    ok = reasons.isna()
    seconds_int = seconds.where(ok).round().astype("Int64")
    repeat = pd.DataFrame({"u": user, "i": item, "t": seconds_int})[ok].duplicated()
    reasons[repeat[repeat].index] = REASON_DUPLICATE_RATING
    ok = reasons.isna()

    seconds_ok = seconds_int[ok].astype("int64")
    transactions = pd.DataFrame(
        {
            schema.ORDER_ID: user[ok] + "-" + item[ok] + "-" + seconds_ok.astype("str"),
            schema.CUSTOMER_ID: user[ok],
            schema.PRODUCT_ID: item[ok],
            schema.QUANTITY: np.int64(1),
            schema.UNIT_PRICE: 0.0,
            schema.TIMESTAMP: pd.to_datetime(seconds_ok, unit="s"),
            schema.CHANNEL: MOVIELENS_CHANNEL,
        }
    )
    categories = pd.Series(MOVIELENS_CATEGORY, index=pd.unique(transactions[schema.PRODUCT_ID]))
    tables = _finish_tables(transactions, _build_customers(transactions), _build_products(transactions, categories))
    return SourceConversion(
        tables=tables,
        quarantine=_line_quarantine(numbered, reasons),
        lines_in=len(numbered),
        accepted=int(ok.sum()),
        blank_lines=blank_lines,
        layout=layout.name,
        notes=("rating values are not part of the contract; each rating is one interaction",),
    )


def _detect_ratings_layout(first_line: str, source: str, file_name: str) -> _RatingsLayout:
    name = file_name.lower()
    tab_fields = [part.strip() for part in first_line.split("\t")]
    if any(INTER_TYPED_FIELD.match(part) for part in tab_fields) or name.endswith(".inter"):
        return _inter_layout(tab_fields, source)
    comma_fields = [part.strip() for part in first_line.split(",")]
    if {ML_USER_ID.lower(), ML_MOVIE_ID.lower()} <= {part.lower() for part in comma_fields}:
        positions = {part.lower(): i for i, part in enumerate(comma_fields)}
        missing = [f for f in (ML_USER_ID, ML_MOVIE_ID, ML_TIMESTAMP) if f.lower() not in positions]
        if missing:
            raise UserError(f"{source}: ratings header lacks {', '.join(missing)}")
        return _RatingsLayout(
            name="ratings.csv",
            separator=",",
            has_header=True,
            n_fields=len(comma_fields),
            user=positions[ML_USER_ID.lower()],
            item=positions[ML_MOVIE_ID.lower()],
            timestamp=positions[ML_TIMESTAMP.lower()],
            rating=positions.get(ML_RATING.lower()),
        )
    if "::" in first_line or name.endswith(".dat"):
        return _headerless_layout("ratings.dat", "::")
    if name.endswith(".csv") and len(comma_fields) == 4 and _all_numbers(comma_fields):
        return _headerless_layout("ratings.csv (no header)", ",")
    if len(tab_fields) == 4 and (name == "u.data" or _all_numbers(tab_fields)):
        return _headerless_layout("u.data", "\t")
    raise UserError(
        f"{source}: unrecognised MovieLens layout; expected u.data (tab-separated user item "
        f"rating timestamp), ratings.csv (header {','.join(ML_LAYOUT_FIELDS)}), ratings.dat "
        f"or a RecBole .inter file (header {INTER_USER_ID}:token {INTER_ITEM_ID}:token ...)"
    )


def _inter_layout(header: list[str], source: str) -> _RatingsLayout:
    names = [part.split(":", 1)[0] for part in header]
    positions = {name: i for i, name in enumerate(names)}
    missing = [f for f in (INTER_USER_ID, INTER_ITEM_ID, INTER_TIMESTAMP) if f not in positions]
    if missing or not all(INTER_TYPED_FIELD.match(part) for part in header):
        raise UserError(
            f"{source}: RecBole .inter header must be typed fields including "
            f"{INTER_USER_ID}:token, {INTER_ITEM_ID}:token and {INTER_TIMESTAMP}:float"
        )
    return _RatingsLayout(
        name=".inter",
        separator="\t",
        has_header=True,
        n_fields=len(header),
        user=positions[INTER_USER_ID],
        item=positions[INTER_ITEM_ID],
        timestamp=positions[INTER_TIMESTAMP],
        rating=positions.get(INTER_RATING),
    )


def _headerless_layout(name: str, separator: str) -> _RatingsLayout:
    """The MovieLens field order `user item rating timestamp`, without a header."""
    return _RatingsLayout(
        name=name, separator=separator, has_header=False, n_fields=4,
        user=0, item=1, rating=2, timestamp=3,
    )  # fmt: skip


def _all_numbers(parts: list[str]) -> bool:
    return bool(pd.to_numeric(pd.Series(parts), errors="coerce").notna().all())


# ---------------------------------------------------------------------------
# Shared steps.
# ---------------------------------------------------------------------------
def _non_blank(lines: Sequence[str]) -> pd.Series:
    """Non-blank lines as text, indexed by their 1-based line number."""
    series = pd.Series(list(lines), index=np.arange(1, len(lines) + 1), dtype="str")
    return series[series.str.strip() != ""]


def _blank(values: pd.Series) -> pd.Series:
    return values.isna() | (values.fillna("").str.strip() == "")


def _is_whole(numbers: pd.Series) -> pd.Series:
    finite = np.isfinite(numbers.fillna(np.nan).astype("float64"))
    return finite & (numbers.where(finite, 0) % 1 == 0)


def _first_reason(index: pd.Index, checks: Sequence[tuple[pd.Series, str | pd.Series]]) -> pd.Series:
    """Per record, the reason of the first failed check (missing where all pass)."""
    reasons = pd.Series(None, index=index, dtype="object")
    for failed, reason in checks:
        hit = reasons.isna() & failed.reindex(index, fill_value=False).fillna(False).astype(bool)
        if hit.any():
            reasons[hit] = reason[hit] if isinstance(reason, pd.Series) else reason
    return reasons


def _line_quarantine(numbered: pd.Series, reasons: pd.Series) -> pd.DataFrame:
    bad = reasons.notna()
    return pd.DataFrame(
        {
            LINE_NUMBER: numbered.index[bad].astype("str"),
            LINE: numbered[bad].to_numpy(),
            REASON: reasons[bad].to_numpy(),
        }
    ).astype("str")


def _build_customers(transactions: pd.DataFrame, regions: pd.Series | None = None) -> pd.DataFrame:
    """One row per customer: signup = first transaction; region = that of the first line."""
    ordered = transactions.assign(_region=regions).sort_values(schema.TIMESTAMP, kind="stable")
    first = ordered.drop_duplicates(schema.CUSTOMER_ID)
    customers = pd.DataFrame(
        {
            schema.CUSTOMER_ID: first[schema.CUSTOMER_ID].to_numpy(),
            schema.SIGNUP_DATE: first[schema.TIMESTAMP].to_numpy(),
        }
    )
    if regions is not None:
        customers[schema.REGION] = first["_region"].to_numpy()
    return customers


def _build_products(transactions: pd.DataFrame, categories: pd.Series) -> pd.DataFrame:
    """One row per product sold: its category and the median unit price paid."""
    price = transactions.groupby(schema.PRODUCT_ID, sort=False)[schema.UNIT_PRICE].median()
    return pd.DataFrame(
        {
            schema.PRODUCT_ID: price.index.to_numpy(),
            schema.CATEGORY: categories.reindex(price.index).to_numpy(),
            schema.PRICE: price.to_numpy(),
        }
    )


_CONTRACT_DTYPES: dict[str, str] = {
    "id": "str",
    "string": "str",
    "timestamp": TIMESTAMP_DTYPE,
    "int": "int64",
    "float": "float64",
}


def _finish_tables(
    transactions: pd.DataFrame, customers: pd.DataFrame, products: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Contract column order and dtypes, rows in a stable order."""
    frames = {
        schema.CUSTOMERS: customers.sort_values(schema.CUSTOMER_ID),
        schema.PRODUCTS: products.sort_values(schema.PRODUCT_ID),
        schema.TRANSACTIONS: transactions.sort_values([schema.TIMESTAMP, schema.ORDER_ID, schema.PRODUCT_ID]),
    }
    finished: dict[str, pd.DataFrame] = {}
    for name, frame in frames.items():
        table = schema.TABLES[name]
        columns = [column for column in table.column_names if column in frame.columns]
        dtypes = {c: _CONTRACT_DTYPES[table.column(c).dtype] for c in columns}
        finished[name] = frame[columns].astype(dtypes).reset_index(drop=True)
    return finished
