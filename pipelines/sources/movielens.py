"""MovieLens ratings -> the contract: every rating is one interaction of quantity 1 at price 0.

Layouts: `u.data`, `ratings.csv`, `ratings.dat` and RecBole `.inter`. The rating value itself
has no place in the contract; a rating that is not a number is still quarantined.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import schema
from pipelines.errors import UserError
from pipelines.sources.conversion import (
    SourceConversion,
    assign_first_reasons,
    build_customers,
    build_line_quarantine,
    build_products,
    finish_tables,
    is_blank,
    reason_wrong_field_count,
    select_non_blank_lines,
)

# ratings.csv header names and RecBole .inter field names (before ":type").
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

# What the converter puts in the contract.
MOVIELENS_CATEGORY = "movie"
MOVIELENS_CHANNEL = "web"
# Timestamps accepted: 1970-01-01 to 9999-12-31 23:59:59, in unix seconds.
LATEST_UNIX_SECONDS = 253_402_300_799

# Quarantine reasons, so tests and reports can name them.
REASON_MISSING_USER_OR_ITEM = "missing user or item id"
REASON_TIMESTAMP_NOT_NUMBER = "timestamp is not a number"
REASON_TIMESTAMP_OUT_OF_RANGE = "timestamp out of range (1970 to 9999)"
REASON_RATING_NOT_NUMBER = "rating is not a number"
REASON_DUPLICATE_RATING = "duplicate rating (same user, item and time)"


@dataclass(frozen=True)
class _RatingsLayout:
    """How one ratings file is laid out: its separator, header, and 0-based field positions."""

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
    numbered = select_non_blank_lines(lines)
    blank_lines = len(lines) - len(numbered)
    if numbered.empty:
        raise UserError(f"{source}: empty file (no data lines)")
    layout = _detect_layout(numbered.iloc[0], source, file_name)
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
        (is_blank(user) | is_blank(item), REASON_MISSING_USER_OR_ITEM),
        (~np.isfinite(seconds.fillna(np.nan)), REASON_TIMESTAMP_NOT_NUMBER),
        ((seconds < 0) | (seconds > LATEST_UNIX_SECONDS), REASON_TIMESTAMP_OUT_OF_RANGE),
        (~np.isfinite(rating.fillna(np.nan)), REASON_RATING_NOT_NUMBER),
    ]
    reasons = assign_first_reasons(numbered.index, checks)
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
    tables = finish_tables(transactions, build_customers(transactions), build_products(transactions, categories))
    return SourceConversion(
        tables=tables,
        quarantine=build_line_quarantine(numbered, reasons),
        lines_in=len(numbered),
        accepted=int(ok.sum()),
        blank_lines=blank_lines,
        layout=layout.name,
        notes=("rating values are not part of the contract; each rating is one interaction",),
    )


def _detect_layout(first_line: str, source: str, file_name: str) -> _RatingsLayout:
    name = file_name.lower()
    tab_fields = [part.strip() for part in first_line.split("\t")]
    if any(INTER_TYPED_FIELD.match(part) for part in tab_fields) or name.endswith(".inter"):
        return _read_inter_layout(tab_fields, source)
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
        return _make_headerless_layout("ratings.dat", "::")
    if name.endswith(".csv") and len(comma_fields) == 4 and _are_all_numbers(comma_fields):
        return _make_headerless_layout("ratings.csv (no header)", ",")
    if len(tab_fields) == 4 and (name == "u.data" or _are_all_numbers(tab_fields)):
        return _make_headerless_layout("u.data", "\t")
    raise UserError(
        f"{source}: unrecognised MovieLens layout; expected u.data (tab-separated user item "
        f"rating timestamp), ratings.csv (header {','.join(ML_LAYOUT_FIELDS)}), ratings.dat "
        f"or a RecBole .inter file (header {INTER_USER_ID}:token {INTER_ITEM_ID}:token ...)"
    )


def _read_inter_layout(header: list[str], source: str) -> _RatingsLayout:
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


def _make_headerless_layout(name: str, separator: str) -> _RatingsLayout:
    """The MovieLens field order `user item rating timestamp`, without a header."""
    return _RatingsLayout(
        name=name, separator=separator, has_header=False, n_fields=4,
        user=0, item=1, rating=2, timestamp=3,
    )  # fmt: skip


def _are_all_numbers(parts: list[str]) -> bool:
    return bool(pd.to_numeric(pd.Series(parts), errors="coerce").notna().all())
