"""pipelines.ingest and pipelines.sources: public data formats -> clean contract tables.

Every fixture is a few hand-written lines or rows, written by the test itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features import schema
from pipelines import io, sources
from pipelines.errors import EXIT_USER_ERROR, UserError
from pipelines.ingest import INGEST_FOLDER, QUARANTINE_FILE, REPORT_FILE, convert_source, main

REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def write_text(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path


def assert_clean_contract(conversion: sources.SourceConversion) -> None:
    """What every converter promises: typed, unique, referentially whole contract tables."""
    tables = conversion.tables
    assert set(tables) == {schema.CUSTOMERS, schema.PRODUCTS, schema.TRANSACTIONS}
    for name, frame in tables.items():
        table = schema.TABLES[name]
        assert set(table.required_columns) <= set(frame.columns), name
        assert list(frame.columns) == [c for c in table.column_names if c in frame.columns]
        for column in frame.columns:
            dtype = table.column(column).dtype
            if dtype in ("id", "string"):
                assert frame[column].dtype == "str", (name, column)
            elif dtype == "timestamp":
                assert pd.api.types.is_datetime64_dtype(frame[column]), (name, column)
        assert frame[list(table.required_columns)].notna().all().all(), name
        if table.unique_key:
            assert not frame.duplicated(list(table.unique_key)).any(), name
    transactions = tables[schema.TRANSACTIONS]
    assert pd.api.types.is_integer_dtype(transactions[schema.QUANTITY])
    assert (transactions[schema.QUANTITY] != 0).all()
    assert transactions[schema.UNIT_PRICE].dtype == "float64"
    assert (transactions[schema.UNIT_PRICE] >= 0).all()
    assert transactions[schema.CHANNEL].isin(schema.CHANNELS).all()
    assert set(transactions[schema.CUSTOMER_ID]) == set(tables[schema.CUSTOMERS][schema.CUSTOMER_ID])
    assert set(transactions[schema.PRODUCT_ID]) == set(tables[schema.PRODUCTS][schema.PRODUCT_ID])
    assert (tables[schema.PRODUCTS][schema.PRICE] >= 0).all()
    assert conversion.lines_in == conversion.accepted + conversion.quarantined
    assert len(transactions) == conversion.accepted - conversion.merged


def reasons_by_line(conversion: sources.SourceConversion) -> dict[int, str]:
    quarantine = conversion.quarantine
    return dict(zip(quarantine[sources.LINE_NUMBER].astype(int), quarantine[sources.REASON], strict=True))


# ---------------------------------------------------------------------------
# CDNOW
# ---------------------------------------------------------------------------
CDNOW_FOUR = [
    "00001 19970101 1 11.77",
    "00002 19970112 1 12.00",
    "00002 19970112 5 77.00",  # a second order the same day
    "00002 19970302 2 20.76",
]


def test_cdnow_four_columns_without_header_gives_one_order_per_line():
    conversion = sources.convert_cdnow(CDNOW_FOUR, source="cdnow.txt")

    assert_clean_contract(conversion)
    transactions = conversion.tables[schema.TRANSACTIONS]
    assert conversion.lines_in == 4 and conversion.quarantined == 0
    assert len(transactions) == 4
    assert transactions[schema.ORDER_ID].is_unique
    same_day = transactions[transactions[schema.TIMESTAMP] == pd.Timestamp("1997-01-12")]
    assert sorted(same_day[schema.QUANTITY]) == [1, 5]
    five = same_day[same_day[schema.QUANTITY] == 5].iloc[0]
    assert five[schema.UNIT_PRICE] == pytest.approx(15.4)
    assert set(transactions[schema.PRODUCT_ID]) == {sources.CDNOW_PRODUCT_ID}
    assert set(transactions[schema.CHANNEL]) == {sources.CDNOW_CHANNEL}
    customers = conversion.tables[schema.CUSTOMERS].set_index(schema.CUSTOMER_ID)
    assert list(customers.index) == ["00001", "00002"]
    assert customers.loc["00002", schema.SIGNUP_DATE] == pd.Timestamp("1997-01-12")
    products = conversion.tables[schema.PRODUCTS]
    assert products[schema.CATEGORY].tolist() == [sources.CDNOW_CATEGORY]


def test_cdnow_header_crlf_and_repeated_whitespace_are_read(tmp_path):
    path = write_text(
        tmp_path / "cdnow.txt",
        [
            "customer_id  date number_of_cds dollar_value",
            *[f"  {x.replace(' ', '   ')}  " for x in CDNOW_FOUR],
            "",
        ],
        newline="\r\n",
    )

    conversion = convert_source("cdnow", path)

    assert_clean_contract(conversion)
    assert conversion.lines_in == 4  # neither the header nor the blank line is a record
    assert conversion.blank_lines == 1
    assert conversion.quarantined == 0
    assert conversion.tables[schema.TRANSACTIONS][schema.CUSTOMER_ID].tolist()[0] == "00001"


def test_cdnow_sample_layout_uses_master_id_as_customer():
    lines = [
        " 00004 0001 19970101  2   29.33",
        " 00004 0001 19970118  2   29.73",
        " 00021 0002 19970101  3   63.34",
    ]

    conversion = sources.convert_cdnow(lines, source="CDNOW_sample.txt")

    assert_clean_contract(conversion)
    assert conversion.layout.startswith(sources.CDNOW_MASTER_ID)
    customers = conversion.tables[schema.CUSTOMERS][schema.CUSTOMER_ID].tolist()
    assert customers == ["00004", "00021"]
    total = (conversion.tables[schema.TRANSACTIONS].eval("quantity * unit_price")).sum()
    assert total == pytest.approx(29.33 + 29.73 + 63.34)


def test_cdnow_malformed_lines_are_quarantined_with_their_reason():
    lines = [
        "00001 19970101 1 11.77",
        "00002 19970101 0 12.00",  # 2: zero cds, positive dollars
        "00003 19970101 x 12.00",  # 3: cds not a number
        "00004 19971345 1 12.00",  # 4: no 45th of a 13th month
        "00005 19970101 1",  # 5: a field missing
        "00006 19970101 1 12.00 extra more",  # 6: too many fields
        "00007 19970101 1 ten",  # 7: dollars not a number
        "00008 19970101 1 -3.00",  # 8: negative dollars
        "00009 1997-01-01 1 3.00",  # 9: wrong date format
        "00010 19970101 0 0.00",  # 10: zero cds
        "00011 19970101 1.5 3.00",  # 11: a fraction of a cd
        "00012 19970101 -1 3.00",  # 12: negative cds
    ]

    conversion = sources.convert_cdnow(lines, source="cdnow.txt")

    assert_clean_contract(conversion)
    assert reasons_by_line(conversion) == {
        2: sources.REASON_ZERO_CDS_POSITIVE_DOLLARS,
        3: sources.REASON_CDS_NOT_NUMBER,
        4: sources.REASON_BAD_DATE,
        5: sources.reason_wrong_field_count(4, 3),
        6: sources.reason_wrong_field_count(4, 6),
        7: sources.REASON_DOLLARS_NOT_NUMBER,
        8: sources.REASON_NEGATIVE_DOLLARS,
        9: sources.REASON_BAD_DATE,
        10: sources.REASON_ZERO_CDS,
        11: sources.REASON_CDS_NOT_NUMBER,
        12: sources.REASON_NEGATIVE_CDS,
    }
    assert conversion.accepted == 1
    quarantine = conversion.quarantine.set_index(sources.LINE_NUMBER)
    assert quarantine.loc["3", sources.LINE] == "00003 19970101 x 12.00"  # the original text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(
            st.sampled_from(
                [
                    "00001",
                    "7",
                    "19970101",
                    "19981231",
                    "19970230",
                    "0",
                    "2",
                    "-1",
                    "1.5",
                    "12.50",
                    "0.00",
                    "abc",
                    "nan",
                ]
            ),
            min_size=1,
            max_size=6,
        ).map(" ".join),
        min_size=1,
        max_size=30,
    )
)
def test_cdnow_any_lines_are_either_accepted_or_quarantined(lines):
    lines = ["00001 19970101 1 1.00", *lines]  # one good line fixes the layout to 4 fields

    conversion = sources.convert_cdnow(lines, source="fuzz.txt")

    assert_clean_contract(conversion)
    assert conversion.lines_in == len(lines)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "empty file"),
        (["", "   "], "empty file"),
        (["customer_id date number_of_cds dollar_value"], "a header and no data"),
        (["id when"], "header has 2 columns"),
        (["1 2", "3 4 5"], "no line has 4 or 5"),
    ],
)
def test_cdnow_unusable_files_raise_user_error_naming_the_file(lines, message):
    with pytest.raises(UserError, match=message) as raised:
        sources.convert_cdnow(lines, source="my_cdnow.txt")
    assert str(raised.value).startswith("my_cdnow.txt:")
    assert "\n" not in str(raised.value)


# ---------------------------------------------------------------------------
# Online Retail
# ---------------------------------------------------------------------------
RETAIL_II_HEADER = [
    "Invoice",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "Price",
    "Customer ID",
    "Country",
]
RETAIL_II_ROWS = [
    [
        "489434",
        "85048",
        "15CM CHRISTMAS GLASS BALL 20 LIGHTS",
        "12",
        "2009-12-01 07:45:00",
        "6.95",
        "13085.0",
        "United Kingdom",
    ],
    [
        "489434",
        "79323P",
        "PINK CHERRY LIGHTS",
        "12",
        "2009-12-01 07:45:00",
        "6.75",
        "13085.0",
        "United Kingdom",
    ],
    [
        "489434",
        "79323P",
        "PINK CHERRY LIGHTS",
        "4",
        "2009-12-01 07:45:00",
        "5.00",
        "13085.0",
        "United Kingdom",
    ],  # same line again
    [
        "489435",
        "22350",
        "CAT BOWL",
        "12",
        "2009-12-01 07:46:00",
        "2.55",
        "13085.0",
        "United Kingdom",
    ],
    [
        "C489449",
        "22087",
        "PAPER BUNTING WHITE LACE",
        "-12",
        "2009-12-01 10:33:00",
        "2.95",
        "16321.0",
        "Australia",
    ],
    [
        "489436",
        "21523",
        "DOORMAT FANCY FONT",
        "10",
        "2009-12-01 09:06:00",
        "5.95",
        "16321.0",
        "Australia",
    ],
    ["489437", "22065", "NO CUSTOMER", "1", "2009-12-01 09:08:00", "1.00", "", "United Kingdom"],
    [
        "489438",
        "22066",
        "FREE SAMPLE",
        "1",
        "2009-12-01 09:08:00",
        "0.00",
        "13078.0",
        "United Kingdom",
    ],
    [
        "A506401",
        "B",
        "Adjust bad debt",
        "1",
        "2010-04-29 13:36:00",
        "-53594.36",
        "13078.0",
        "United Kingdom",
    ],
    [
        "489439",
        "22067",
        "LOST IN WAREHOUSE",
        "-5",
        "2009-12-01 09:10:00",
        "1.00",
        "13078.0",
        "United Kingdom",
    ],
    ["489440", "POST", "POSTAGE", "1", "2009-12-01 09:12:00", "18.00", "13078.0", "France"],
]


def retail_frame(header: list[str], rows: list[list[str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=header).replace("", np.nan)


def test_online_retail_ii_csv_returns_merges_and_quarantine(tmp_path):
    path = tmp_path / "online_retail_II.csv"
    retail_frame(RETAIL_II_HEADER, RETAIL_II_ROWS).to_csv(path, index=False)

    conversion = convert_source("online-retail", path)

    assert_clean_contract(conversion)
    assert conversion.lines_in == len(RETAIL_II_ROWS)
    assert conversion.merged == 1
    quarantine = conversion.quarantine.set_index(sources.SOURCE_ROW)[sources.REASON].to_dict()
    assert quarantine == {  # header is row 1, so data row i is row i + 2
        "8": sources.REASON_MISSING_CUSTOMER,
        "9": sources.REASON_PRICE_NOT_POSITIVE,
        "10": sources.reason_invoice_type("A"),
        "11": sources.REASON_NEGATIVE_SALE,
    }
    transactions = conversion.tables[schema.TRANSACTIONS].set_index([schema.ORDER_ID, schema.PRODUCT_ID])
    merged = transactions.loc[("489434", "79323P")]
    assert merged[schema.QUANTITY] == 16
    assert merged[schema.UNIT_PRICE] == pytest.approx((12 * 6.75 + 4 * 5.00) / 16)
    assert transactions.loc[("C489449", "22087"), schema.QUANTITY] == -12
    assert (transactions[schema.CHANNEL] == sources.RETAIL_CHANNEL).all()
    customers = conversion.tables[schema.CUSTOMERS].set_index(schema.CUSTOMER_ID)
    assert sorted(customers.index) == ["13078", "13085", "16321"]  # no ".0"
    assert customers.loc["16321", schema.REGION] == "Australia"
    assert customers.loc["16321", schema.SIGNUP_DATE] == pd.Timestamp("2009-12-01 09:06:00")
    categories = conversion.tables[schema.PRODUCTS].set_index(schema.PRODUCT_ID)[schema.CATEGORY]
    assert categories.to_dict() == {
        "21523": "home_decor",
        "22087": "stationery",
        "22350": "kitchen",
        "79323P": "lighting",
        "85048": "christmas",
        "POST": sources.RETAIL_SERVICE_CATEGORY,
    }


def test_online_retail_i_naming_and_us_dates(tmp_path):
    header = [
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
    ]
    rows = [
        [
            "536365",
            "85123A",
            "WHITE HANGING HEART T-LIGHT HOLDER",
            "6",
            "12/1/2010 8:26",
            "2.55",
            "17850",
            "United Kingdom",
        ],
        [
            "536366",
            "22633",
            "HAND WARMER UNION JACK",
            "6",
            "12/13/2010 18:01",
            "1.85",
            "17850",
            "United Kingdom",
        ],
        ["C536379", "D", "Discount", "-1", "12/1/2010 9:41", "27.5", "14527", "United Kingdom"],
        [
            "536367",
            "84879",
            "ASSORTED COLOUR BIRD ORNAMENT",
            "32",
            "not a date",
            "1.69",
            "13047",
            "United Kingdom",
        ],
    ]
    path = tmp_path / "data.csv"
    path.write_bytes(retail_frame(header, rows).to_csv(index=False).encode("latin-1"))

    conversion = convert_source("online-retail", path)

    assert_clean_contract(conversion)
    assert conversion.layout == "online retail I"
    transactions = conversion.tables[schema.TRANSACTIONS].set_index(schema.ORDER_ID)
    assert transactions.loc["536365", schema.TIMESTAMP] == pd.Timestamp("2010-12-01 08:26")
    assert transactions.loc["536366", schema.TIMESTAMP] == pd.Timestamp("2010-12-13 18:01")
    assert transactions.loc["C536379", schema.QUANTITY] == -1
    assert conversion.reason_counts() == {sources.REASON_BAD_DATE: 1}


def test_online_retail_day_first_dates_are_recognised_for_the_whole_file():
    rows = [
        ["1", "A1", "MUG", "1", "01/12/2010 08:26", "1.0", "1", "UK"],  # 1 December
        ["2", "A1", "MUG", "1", "13/12/2010 08:26", "1.0", "1", "UK"],  # only day-first makes sense
    ]

    conversion = sources.convert_online_retail(retail_frame(RETAIL_II_HEADER, rows), source="x.csv")

    timestamps = conversion.tables[schema.TRANSACTIONS][schema.TIMESTAMP].tolist()
    assert timestamps == [pd.Timestamp("2010-12-01 08:26"), pd.Timestamp("2010-12-13 08:26")]


def test_online_retail_xlsx_reads_every_sheet_and_skips_their_overlap(tmp_path):
    first = RETAIL_II_ROWS[:4]
    second = [RETAIL_II_ROWS[3], RETAIL_II_ROWS[4], RETAIL_II_ROWS[5]]  # row 3 repeats sheet 1
    path = tmp_path / "online_retail_II.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, rows in (("Year 2009-2010", first), ("Year 2010-2011", second)):
            frame = retail_frame(RETAIL_II_HEADER, rows)
            frame["Quantity"] = frame["Quantity"].astype(int)  # numbers as Excel stores them
            frame["Price"] = frame["Price"].astype(float)
            frame["Customer ID"] = frame["Customer ID"].astype(float)
            frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
            frame.to_excel(writer, sheet_name=name, index=False)

    conversion = convert_source("online-retail", path)

    assert_clean_contract(conversion)
    assert conversion.lines_in == 7
    assert conversion.quarantine[sources.REASON].tolist() == [sources.reason_sheet_overlap("Year 2009-2010")]
    assert conversion.quarantine[sources.SOURCE_SHEET].tolist() == ["Year 2010-2011"]
    transactions = conversion.tables[schema.TRANSACTIONS]
    assert set(transactions[schema.ORDER_ID]) == {"489434", "489435", "C489449", "489436"}
    assert transactions.loc[transactions[schema.ORDER_ID] == "489435", schema.QUANTITY].tolist() == [12]
    assert set(transactions[schema.CUSTOMER_ID]) == {"13085", "16321"}


def test_online_retail_invoice_with_two_customers_is_quarantined_whole():
    rows = [
        ["1", "A1", "MUG", "1", "2010-12-01 08:26", "1.0", "1", "UK"],
        ["1", "A2", "CUP", "1", "2010-12-01 08:26", "1.0", "2", "UK"],
        ["2", "A1", "MUG", "1", "2010-12-02 08:26", "1.0", "2", "UK"],
    ]

    conversion = sources.convert_online_retail(retail_frame(RETAIL_II_HEADER, rows), source="x.csv")

    assert conversion.reason_counts() == {sources.REASON_INVOICE_SEVERAL_CUSTOMERS: 2}
    assert conversion.tables[schema.TRANSACTIONS][schema.ORDER_ID].tolist() == ["2"]


def test_online_retail_without_its_columns_is_a_user_error(tmp_path):
    path = tmp_path / "sales.csv"
    pd.DataFrame({"order": ["1"], "sku": ["x"]}).to_csv(path, index=False)

    with pytest.raises(
        UserError,
        match=r"sales.csv: not an Online Retail table; missing column\(s\) Invoice or InvoiceNo",
    ):
        convert_source("online-retail", path)


# ---------------------------------------------------------------------------
# MovieLens
# ---------------------------------------------------------------------------
U_DATA = ["196\t242\t3\t881250949", "186\t302\t3\t891717742", "196\t377\t1\t878887116"]
RATINGS_CSV = [
    "userId,movieId,rating,timestamp",
    "1,1,4.0,964982703",
    "1,3,4.0,964981247",
    "2,1,3.5,1445714835",
]
INTER = ["user_id:token\titem_id:token\trating:float\ttimestamp:float", *U_DATA]
RATINGS_DAT = ["1::1193::5::978300760", "1::661::3::978302109", "2::1193::4::978298413"]


@pytest.mark.parametrize(
    ("file_name", "lines", "layout"),
    [
        ("u.data", U_DATA, "u.data"),
        ("ratings.csv", RATINGS_CSV, "ratings.csv"),
        ("ml-100k.inter", INTER, ".inter"),
        ("ratings.dat", RATINGS_DAT, "ratings.dat"),
    ],
)
def test_movielens_layouts_become_unit_interactions(tmp_path, file_name, lines, layout):
    path = write_text(tmp_path / file_name, lines)

    conversion = convert_source("movielens", path)

    assert_clean_contract(conversion)
    assert conversion.layout == layout
    transactions = conversion.tables[schema.TRANSACTIONS]
    assert len(transactions) == 3 and conversion.lines_in == 3
    assert (transactions[schema.QUANTITY] == 1).all()
    assert (transactions[schema.UNIT_PRICE] == 0).all()
    assert (transactions[schema.CHANNEL] == sources.MOVIELENS_CHANNEL).all()
    assert set(conversion.tables[schema.PRODUCTS][schema.CATEGORY]) == {sources.MOVIELENS_CATEGORY}
    customers = conversion.tables[schema.CUSTOMERS]
    assert len(customers) == 2
    first_user = customers.iloc[0]
    user_times = transactions.loc[transactions[schema.CUSTOMER_ID] == first_user[schema.CUSTOMER_ID], schema.TIMESTAMP]
    assert first_user[schema.SIGNUP_DATE] == user_times.min()


def test_movielens_unix_seconds_become_utc_timestamps():
    conversion = sources.convert_movielens(U_DATA[:1], source="u.data", file_name="u.data")

    assert conversion.tables[schema.TRANSACTIONS][schema.TIMESTAMP].iloc[0] == pd.Timestamp("1997-12-04 15:55:49")


def test_movielens_malformed_lines_are_quarantined():
    lines = [
        "1\t10\t4\t881250949",
        "1\t11\t4",  # 2: a field missing
        "1\t12\t4\tyesterday",  # 3
        "\t13\t4\t881250949",  # 4: no user
        "1\t14\tfive\t881250949",  # 5
        "1\t10\t4\t881250949",  # 6: the same rating again
        "1\t15\t4\t-5",  # 7
    ]

    conversion = sources.convert_movielens(lines, source="u.data", file_name="u.data")

    assert_clean_contract(conversion)
    assert reasons_by_line(conversion) == {
        2: sources.reason_wrong_field_count(4, 3),
        3: sources.REASON_TIMESTAMP_NOT_NUMBER,
        4: sources.REASON_MISSING_USER_OR_ITEM,
        5: sources.REASON_RATING_NOT_NUMBER,
        6: sources.REASON_DUPLICATE_RATING,
        7: sources.REASON_TIMESTAMP_OUT_OF_RANGE,
    }
    assert conversion.accepted == 1


@pytest.mark.parametrize(
    ("file_name", "lines", "message"),
    [
        ("movies.txt", ["Toy Story (1995)|Animation"], "unrecognised MovieLens layout"),
        ("x.inter", ["user_id\titem_id"], "RecBole .inter header"),
        ("ratings.csv", ["userId,movieId,rating"], "lacks timestamp"),
        ("u.data", [], "empty file"),
    ],
)
def test_movielens_unusable_files_raise_user_error(file_name, lines, message):
    with pytest.raises(UserError, match=message):
        sources.convert_movielens(lines, source=file_name, file_name=file_name)


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------
def test_cli_writes_tables_quarantine_and_report(tmp_path, capsys):
    source = write_text(tmp_path / "cdnow.txt", [*CDNOW_FOUR, "00009 19970101 0 5.00", "garbage"])
    out = tmp_path / "out"

    code = main(["--format", "cdnow", "--input", str(source), "--out", str(out), "--file-format", "csv"])

    assert code == 0
    assert sorted(io.find_table_files(out)) == sorted([schema.CUSTOMERS, schema.PRODUCTS, schema.TRANSACTIONS])
    tables = io.read_tables(out)
    assert tables[schema.TRANSACTIONS][schema.CUSTOMER_ID].tolist()[0] == "00001"  # zeros kept
    report = json.loads((out / INGEST_FOLDER / REPORT_FILE).read_text())
    assert report["lines_in"] == 6
    assert report["accepted"] + report["quarantined"] == report["lines_in"]
    assert report["reasons"] == {
        sources.REASON_ZERO_CDS_POSITIVE_DOLLARS: 1,
        sources.reason_wrong_field_count(4, 1): 1,
    }
    quarantine = pd.read_csv(out / INGEST_FOLDER / QUARANTINE_FILE, dtype=str)
    assert quarantine[sources.LINE].tolist() == ["00009 19970101 0 5.00", "garbage"]
    assert "6 lines -> 4 accepted" in capsys.readouterr().out


def test_cli_parquet_output_keeps_string_ids(tmp_path):
    source = write_text(tmp_path / "u.data", U_DATA)
    out = tmp_path / "out"

    assert main(["--format", "movielens", "--input", str(source), "--out", str(out)]) == 0

    transactions = pd.read_parquet(out / "transactions.parquet")
    assert transactions[schema.CUSTOMER_ID].dtype == "str"
    assert transactions[schema.CUSTOMER_ID].tolist()[0] == "196"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "cdnow", "--input", "{tmp}/missing.txt"], "missing.txt: file not found"),
        (["--format", "csv-magic", "--input", "{tmp}/empty.txt"], "unknown format 'csv-magic'"),
        (["--format", "cdnow", "--input", "{tmp}/empty.txt"], "empty.txt: empty file"),
        (["--format", "online-retail", "--input", "{tmp}/empty.txt"], "empty.txt: empty file"),
        (
            ["--format", "movielens", "--input", "{tmp}/bad.csv"],
            "bad.csv: unrecognised MovieLens layout",
        ),
        (
            ["--format", "cdnow", "--input", "{tmp}/empty.txt", "--file-format", "xlsx"],
            "unknown file format",
        ),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(tmp_path, capsys, args, message):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bad.csv").write_text("a;b;c\n1;2;3\n")
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in args] + ["--out", str(tmp_path / "out")]

    code = main(argv)

    assert code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_folder_with_other_tables(tmp_path, capsys):
    source = write_text(tmp_path / "cdnow.txt", CDNOW_FOUR)
    out = tmp_path / "out"
    out.mkdir()
    (out / "events.csv").write_text("customer_id,timestamp,event_type\n")

    code = main(["--format", "cdnow", "--input", str(source), "--out", str(out)])

    assert code == EXIT_USER_ERROR
    assert "events.csv" in capsys.readouterr().err
    assert not (out / "transactions.parquet").exists()


def test_module_exits_2_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.ingest", "--format", "cdnow",
         "--input", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "out")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == EXIT_USER_ERROR
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.txt'}: file not found"]
    assert "Traceback" not in result.stderr
