"""Frames built from their blocks (the feature frame, frames of typed arrays), the customers-table row
a customer's attributes come from, and the point-in-time cut: the same frames as pandas' constructors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema as s
from features.customer import build_customer_features
from features.frames import frame_of_arrays
from features.history import History, rows_before
from features.records import count_by_label
from pipelines.profiles import build_reference
from tests.builders import customers_table, random_tables

AS_OF = pd.Timestamp("2024-03-15")


def features_at(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp = AS_OF) -> pd.DataFrame:
    return build_customer_features(History.from_tables(tables), as_of, build_reference(tables, as_of, 5))


def test_the_frame_is_id_as_of_floats_text_then_scores_and_behaves_like_any_frame():
    features = features_at(random_tables(3, n_customers=20))
    kinds = [dtype.kind if isinstance(dtype, np.dtype) else "T" for dtype in features.dtypes.tolist()]
    assert kinds[:2] == ["T", "M"] and features[s.AS_OF].eq(AS_OF).all()
    first_text = kinds.index("T", 2)
    assert set(kinds[2:first_text]) == {"f"}
    assert kinds[first_text:] == ["T"] * 6 + ["i"] * 3
    assert features.columns.dtype == "str" and features.index.equals(pd.RangeIndex(len(features)))
    # a frame made from its blocks answers like one made column by column
    rebuilt = pd.DataFrame({column: features[column].copy() for column in features.columns})
    pd.testing.assert_frame_equal(features, rebuilt)
    changed = features.copy()
    changed.iloc[0, 2] = -5.0
    assert features.iloc[0, 2] != -5.0  # copies do not share the float block


def test_no_customer_gives_an_empty_frame_with_every_column():
    tables = random_tables(3, n_customers=20)
    features = features_at(tables, pd.Timestamp("2000-01-01"))
    assert len(features) == 0
    assert list(features.columns) == list(features_at(tables).columns)
    assert list(features.dtypes) == list(features_at(tables).dtypes)


def test_a_customer_listed_twice_takes_attributes_from_the_first_row():
    tables = random_tables(4, n_customers=10)
    customers = tables[s.CUSTOMERS]
    first = customers.iloc[[3]].assign(
        **{s.GENDER: pd.array(["male"], dtype="str"), s.BIRTH_YEAR: pd.array([1990], dtype="Int64")}
    )
    second = customers.iloc[[3]].assign(
        **{s.GENDER: pd.array(["female"], dtype="str"), s.BIRTH_YEAR: pd.array([1950], dtype="Int64")}
    )
    tables[s.CUSTOMERS] = pd.concat([customers.iloc[:3], first, customers.iloc[3:], second], ignore_index=True)
    features = features_at(tables).set_index(s.CUSTOMER_ID)
    row = features.loc[customers[s.CUSTOMER_ID].iloc[3]]
    assert row[s.GENDER] == "male" and row[s.AGE_YEARS] == AS_OF.year - 1990


def test_a_customer_without_a_customers_row_gets_the_defaults():
    tables = random_tables(5, n_customers=10)
    known = tables[s.CUSTOMERS][s.CUSTOMER_ID].iloc[0]
    tables[s.CUSTOMERS] = customers_table([], [])
    features = features_at(tables).set_index(s.CUSTOMER_ID)
    assert features.loc[known, s.GENDER] == s.UNKNOWN and features.loc[known, s.AGE_YEARS] == -1.0
    assert features.loc[known, s.MARKETING_OPT_IN] == 0.0


def test_rows_before_keeps_what_a_pandas_comparison_keeps():
    times = pd.to_datetime(["2024-01-01", None, "2024-03-15", "2024-03-14 23:59:59.999999999"], format="ISO8601")
    frame = pd.DataFrame({s.TIMESTAMP: times.astype("datetime64[ns]"), "n": range(4)})
    for unit in ("ns", "us", "s"):
        in_unit = frame.astype({s.TIMESTAMP: f"datetime64[{unit}]"})
        cut = rows_before(in_unit, s.TIMESTAMP, AS_OF)
        assert cut["n"].tolist() == in_unit.loc[in_unit[s.TIMESTAMP] < AS_OF, "n"].tolist() == [0, 3]
    whole = frame.iloc[[0]]
    assert rows_before(whole, s.TIMESTAMP, AS_OF) is whole  # nothing to cut: no copy


def test_id_columns_of_other_dtypes_give_the_same_frame():
    """Ids factorised together over the three tables: the same rows whatever dtype each id column has."""
    tables = random_tables(6, n_customers=15)
    expected = features_at(tables)
    mixed = dict(tables)
    mixed[s.EVENTS] = tables[s.EVENTS].astype({s.CUSTOMER_ID: object})
    mixed[s.CUSTOMERS] = tables[s.CUSTOMERS].astype({s.CUSTOMER_ID: "string"})
    pd.testing.assert_frame_equal(features_at(mixed), expected)


def test_count_by_label_counts_each_pair_and_skips_unknown_labels():
    codes = np.array([0, 0, 1, 2, 2, 2])
    labels = np.array([1, 1, 0, -1, 2, 3])
    counts = count_by_label(codes, labels, 3, 3)
    assert counts.tolist() == [[0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    assert count_by_label(codes[:0], labels[:0], 0, 3).shape == (0, 3)


def test_frames_of_arrays_equal_what_the_dataframe_constructor_makes():
    rng = np.random.default_rng(8)
    for n in (0, 1, 7):
        text = pd.array(rng.choice(["a", "b", None], n).tolist(), dtype="str")

        def columns(text=text, n=n):
            return {
                "text": text.copy(),
                "float": rng.normal(size=n),
                "int": rng.integers(0, 9, n),
                "numpy_ea": pd.array(rng.integers(0, 9, n), dtype=np.dtype("int64")),
                "time": rng.integers(0, 10**18, n).view("datetime64[ns]"),
                "nullable_int": pd.array(rng.choice([1, 2, None], n).tolist(), dtype="Int64"),
                "nullable_bool": pd.array(rng.choice([True, False, None], n).tolist(), dtype="boolean"),
                "bool": rng.random(n) < 0.5,
            }

        made = columns()
        expected = pd.DataFrame({name: values.copy() for name, values in made.items()}, index=pd.RangeIndex(n))
        pd.testing.assert_frame_equal(frame_of_arrays(made, n), expected, check_exact=True)
        objects = {"object": np.array(["x"] * n, dtype=object), "float": np.zeros(n)}
        pd.testing.assert_frame_equal(frame_of_arrays(objects, n), pd.DataFrame(objects, index=pd.RangeIndex(n)))
