"""UCI Online Retail and Online Retail II -> the contract: one row is one invoice line.

Input is a CSV or every sheet of the workbook, as text cells. Invoices starting with "C" are
returns; lines of one invoice with the same stock code are merged into one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from features import schema
from pipelines.errors import UserError
from pipelines.sources.conversion import (
    REASON,
    REASON_BAD_DATE,
    TIMESTAMP_DTYPE,
    SourceConversion,
    assign_first_reasons,
    build_customers,
    build_products,
    finish_tables,
    is_blank,
    is_whole,
)

# Quarantine columns besides the original cells and `reason`.
SOURCE_SHEET = "source_sheet"  # workbook sheet (.xlsx only)
SOURCE_ROW = "source_row"  # 1-based row in the file or sheet, the header being row 1

# Online Retail I uses InvoiceNo/UnitPrice/CustomerID; II uses Invoice/Price/Customer ID.
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

# What the converter puts in the contract.
RETAIL_CHANNEL = "web"

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

# Quarantine reasons, so tests and reports can name them.
REASON_MISSING_CUSTOMER = "missing customer id"
REASON_MISSING_INVOICE_OR_STOCK_CODE = "missing invoice or stock code"
REASON_QUANTITY_NOT_NUMBER = "quantity is not a whole number"
REASON_ZERO_QUANTITY = "zero quantity"
REASON_NEGATIVE_SALE = "negative quantity on a sale invoice"
REASON_POSITIVE_RETURN = "positive quantity on a return invoice"
REASON_PRICE_NOT_NUMBER = "price is not a number"
REASON_PRICE_NOT_POSITIVE = "price <= 0"
REASON_INVOICE_SEVERAL_CUSTOMERS = "invoice has several customer ids"


def reason_invoice_type(prefix: str) -> str:
    return f"invoice type {prefix!r} is neither a sale nor a return"


def reason_sheet_overlap(earlier_sheet: str) -> str:
    return f"same row already in sheet {earlier_sheet!r} (the sheets overlap)"


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
        canonical = _rename_to_canonical_columns(frame, where)
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
    overlap = _find_repeats_of_earlier_sheets(cells)

    reasons = assign_first_reasons(
        cells.index,
        [
            (
                overlap.notna(),
                overlap.map(lambda p: reason_sheet_overlap(sheet_names[int(p)]) if pd.notna(p) else None),
            ),
            (is_blank(invoice) | is_blank(stock_code), REASON_MISSING_INVOICE_OR_STOCK_CODE),
            (is_blank(customer), REASON_MISSING_CUSTOMER),
            (prefix.notna() & ~is_return, prefix.map(reason_invoice_type, na_action="ignore")),
            (~is_whole(quantity), REASON_QUANTITY_NOT_NUMBER),
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
    products = build_products(lines, _assign_categories(stock_code[ok], descriptions))
    country = cells.loc[ok, RETAIL_COUNTRY].str.strip()
    customers = build_customers(lines, regions=country)
    quarantine = original[~ok].assign(**{REASON: reasons[~ok]})
    notes = ()
    if is_workbook and len(sheets) > 1:
        notes = (f"read {len(sheets)} sheets: {', '.join(map(repr, sheet_names))}",)
    return SourceConversion(
        tables=finish_tables(transactions, customers, products),
        quarantine=quarantine.reset_index(drop=True),
        lines_in=len(cells),
        accepted=int(ok.sum()),
        merged=len(lines) - len(transactions),
        layout="online retail " + ("II" if _is_retail_ii(sheets) else "I"),
        notes=notes,
    )


def _normalise_header(name: object) -> str:
    return re.sub(r"[\s_]+", "", str(name)).lower()


def _rename_to_canonical_columns(frame: pd.DataFrame, where: str) -> pd.DataFrame:
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


def _find_repeats_of_earlier_sheets(cells: pd.DataFrame) -> pd.Series:
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


def _assign_categories(stock_codes: pd.Series, descriptions: pd.Series) -> pd.Series:
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
