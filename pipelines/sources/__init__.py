"""Public data sets -> the contract: pure converters from raw lines or text cells to tables.

Each converter takes what `pipelines.io` read (lines, or frames whose cells are all text) and
returns a `SourceConversion`: the contract tables the source has, plus a quarantine frame
holding every input record that could not be used, with its original fields and a `reason`.
Nothing is dropped silently: `lines_in == accepted + quarantined` is checked on construction,
and records folded into another (same invoice and stock code) are counted as `merged`.
Blank lines carry no record and are neither counted nor quarantined (`blank_lines`).

Supported sources
- CDNOW (`convert_cdnow`): `customer_id YYYYMMDD cds dollars`, or the 5-column
  `CDNOW_sample.txt` layout `master_id sample_id YYYYMMDD cds dollars`; whitespace-separated,
  optional header line. One line is one order of the single product "cd".
- UCI Online Retail and Online Retail II (`convert_online_retail`): CSV or every sheet of
  the workbook. Invoices starting with "C" are returns.
- MovieLens (`convert_movielens`): `u.data`, `ratings.csv`, `ratings.dat` and RecBole
  `.inter`. Every rating is one interaction of quantity 1 at price 0 (the rating value
  itself has no place in the contract).

Modules
- `conversion`: `SourceConversion`, the quarantine columns and the steps the converters share.
- `cdnow`, `online_retail`, `movielens`: one converter each, with its format's names and reasons.

This package re-exports the converters, the result, the quarantine columns, every quarantine
reason and the values the converters write, so callers use `sources.convert_cdnow`,
`sources.REASON_BAD_DATE` and so on; the formats' own field names stay in their modules.
"""

from pipelines.sources.cdnow import (
    CDNOW_CATEGORY,
    CDNOW_CHANNEL,
    CDNOW_MASTER_ID,
    CDNOW_PRODUCT_ID,
    REASON_CDS_NOT_NUMBER,
    REASON_DOLLARS_NOT_NUMBER,
    REASON_NEGATIVE_CDS,
    REASON_NEGATIVE_DOLLARS,
    REASON_ZERO_CDS,
    REASON_ZERO_CDS_POSITIVE_DOLLARS,
    convert_cdnow,
)
from pipelines.sources.conversion import (
    LINE,
    LINE_NUMBER,
    REASON,
    REASON_BAD_DATE,
    SourceConversion,
    reason_wrong_field_count,
)
from pipelines.sources.movielens import (
    MOVIELENS_CATEGORY,
    MOVIELENS_CHANNEL,
    REASON_DUPLICATE_RATING,
    REASON_MISSING_USER_OR_ITEM,
    REASON_RATING_NOT_NUMBER,
    REASON_TIMESTAMP_NOT_NUMBER,
    REASON_TIMESTAMP_OUT_OF_RANGE,
    convert_movielens,
)
from pipelines.sources.online_retail import (
    REASON_INVOICE_SEVERAL_CUSTOMERS,
    REASON_MISSING_CUSTOMER,
    REASON_MISSING_INVOICE_OR_STOCK_CODE,
    REASON_NEGATIVE_SALE,
    REASON_POSITIVE_RETURN,
    REASON_PRICE_NOT_NUMBER,
    REASON_PRICE_NOT_POSITIVE,
    REASON_QUANTITY_NOT_NUMBER,
    REASON_ZERO_QUANTITY,
    RETAIL_CHANNEL,
    RETAIL_FALLBACK_CATEGORY,
    RETAIL_SERVICE_CATEGORY,
    SOURCE_ROW,
    SOURCE_SHEET,
    convert_online_retail,
    reason_invoice_type,
    reason_sheet_overlap,
)

__all__ = [
    # the converters and their result
    "convert_cdnow",
    "convert_online_retail",
    "convert_movielens",
    "SourceConversion",
    # quarantine columns
    "REASON",
    "LINE_NUMBER",
    "LINE",
    "SOURCE_SHEET",
    "SOURCE_ROW",
    # quarantine reasons
    "REASON_BAD_DATE",
    "reason_wrong_field_count",
    "REASON_CDS_NOT_NUMBER",
    "REASON_DOLLARS_NOT_NUMBER",
    "REASON_ZERO_CDS_POSITIVE_DOLLARS",
    "REASON_ZERO_CDS",
    "REASON_NEGATIVE_CDS",
    "REASON_NEGATIVE_DOLLARS",
    "REASON_MISSING_CUSTOMER",
    "REASON_MISSING_INVOICE_OR_STOCK_CODE",
    "REASON_QUANTITY_NOT_NUMBER",
    "REASON_ZERO_QUANTITY",
    "REASON_NEGATIVE_SALE",
    "REASON_POSITIVE_RETURN",
    "REASON_PRICE_NOT_NUMBER",
    "REASON_PRICE_NOT_POSITIVE",
    "REASON_INVOICE_SEVERAL_CUSTOMERS",
    "reason_invoice_type",
    "reason_sheet_overlap",
    "REASON_MISSING_USER_OR_ITEM",
    "REASON_TIMESTAMP_NOT_NUMBER",
    "REASON_TIMESTAMP_OUT_OF_RANGE",
    "REASON_RATING_NOT_NUMBER",
    "REASON_DUPLICATE_RATING",
    # values the converters write into the contract, and the CDNOW sample layout's customer column
    "CDNOW_PRODUCT_ID",
    "CDNOW_CATEGORY",
    "CDNOW_CHANNEL",
    "CDNOW_MASTER_ID",
    "RETAIL_CHANNEL",
    "RETAIL_SERVICE_CATEGORY",
    "RETAIL_FALLBACK_CATEGORY",
    "MOVIELENS_CATEGORY",
    "MOVIELENS_CHANNEL",
]
