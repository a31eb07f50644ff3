"""CDNOW purchase logs -> the contract: one line is one order of the single product "cd".

Layouts: `customer_id YYYYMMDD cds dollars`, or the 5-column `CDNOW_sample.txt` layout
`master_id sample_id YYYYMMDD cds dollars`; whitespace-separated, optional header line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features import schema
from pipelines.errors import UserError
from pipelines.sources.conversion import (
    REASON_BAD_DATE,
    SourceConversion,
    assign_first_reasons,
    build_customers,
    build_line_quarantine,
    build_products,
    finish_tables,
    is_whole,
    reason_wrong_field_count,
    select_non_blank_lines,
)

# Header names (a header line is optional).
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

# What the converter puts in the contract.
CDNOW_PRODUCT_ID = "cd"
CDNOW_CATEGORY = "music"
CDNOW_CHANNEL = "other"

# Quarantine reasons, so tests and reports can name them.
REASON_CDS_NOT_NUMBER = "number_of_cds is not a whole number"
REASON_DOLLARS_NOT_NUMBER = "dollar_value is not a number"
REASON_ZERO_CDS_POSITIVE_DOLLARS = "zero cds with positive dollars"
REASON_ZERO_CDS = "zero cds"
REASON_NEGATIVE_CDS = "negative number_of_cds"
REASON_NEGATIVE_DOLLARS = "negative dollar_value"


def convert_cdnow(lines: Sequence[str], source: str) -> SourceConversion:
    """CDNOW purchase log -> customers, products ("cd") and transactions (one order per line).

    The layout (4 or 5 fields) comes from the header if there is one, else from the most
    common field count. Customer ids are kept as written (zero padding included); signup is
    the first purchase date; unit_price = dollars / cds; order ids are
    `<customer>-<YYYYMMDD>-<n>`, n counting that customer's lines of that day.
    """
    numbered = select_non_blank_lines(lines)
    blank_lines = len(lines) - len(numbered)
    if numbered.empty:
        raise UserError(f"{source}: empty file (no data lines)")
    stripped = numbered.str.strip()
    fields = stripped.str.split(expand=True)
    n_fields = fields.notna().sum(axis=1)

    width = _read_header_width(fields.iloc[0], int(n_fields.iloc[0]), source)
    if width is not None:  # the first line is a header
        fields, n_fields, numbered = fields.iloc[1:], n_fields.iloc[1:], numbered.iloc[1:]
        if numbered.empty:
            raise UserError(f"{source}: empty file (a header and no data lines)")
    else:
        width = _infer_width_from_data(n_fields, source)
    names = CDNOW_LAYOUTS[width]
    fields = fields.reindex(columns=range(width)).set_axis(names, axis=1)

    dates = pd.to_datetime(
        fields[CDNOW_DATE].where(fields[CDNOW_DATE].str.fullmatch(r"\d{8}", na=False)),
        format="%Y%m%d",
        errors="coerce",
    )
    cds = pd.to_numeric(fields[CDNOW_CDS], errors="coerce")
    dollars = pd.to_numeric(fields[CDNOW_DOLLARS], errors="coerce")
    reasons = assign_first_reasons(
        numbered.index,
        [
            (n_fields != width, n_fields.map(lambda n: reason_wrong_field_count(width, n))),
            (dates.isna(), REASON_BAD_DATE),
            (~is_whole(cds), REASON_CDS_NOT_NUMBER),
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
    products = build_products(transactions, pd.Series(CDNOW_CATEGORY, index=[CDNOW_PRODUCT_ID]))
    tables = finish_tables(transactions, build_customers(transactions), products)
    return SourceConversion(
        tables=tables,
        quarantine=build_line_quarantine(numbered, reasons),
        lines_in=len(numbered),
        accepted=int(ok.sum()),
        blank_lines=blank_lines,
        layout=" ".join(names),
    )


def _read_header_width(first: pd.Series, n_fields: int, source: str) -> int | None:
    """The header's field count if the first line is a header (no token is a number)."""
    tokens = first.dropna()
    if pd.to_numeric(tokens, errors="coerce").notna().any():
        return None
    if n_fields not in CDNOW_LAYOUTS:
        layouts = " or ".join(f"{n} ({' '.join(names)})" for n, names in CDNOW_LAYOUTS.items())
        raise UserError(f"{source}: header has {n_fields} columns, not a CDNOW log; expected {layouts}")
    return n_fields


def _infer_width_from_data(n_fields: pd.Series, source: str) -> int:
    """The most common known field count; UserError if no line has one."""
    counts = n_fields[n_fields.isin(list(CDNOW_LAYOUTS))].value_counts()
    if counts.empty:
        raise UserError(f"{source}: no line has 4 or 5 whitespace-separated fields; not a CDNOW log")
    best = counts[counts == counts.max()].index
    if len(best) == 1:
        return int(best[0])
    # a tie: the first line of a known width decides
    return int(n_fields[n_fields.isin(list(best))].iloc[0])
