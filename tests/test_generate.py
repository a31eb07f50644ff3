"""The sample data generator: determinism, the contract, and the structure hidden in the data."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import schema
from pipelines import simulation
from pipelines.errors import EXIT_USER_ERROR
from pipelines.generate import main, read_truth
from pipelines.io import read_table, read_tables

DAY = pd.Timedelta(days=1)
BROWSING_EVENTS = (
    schema.EVENT_SESSION_START,
    schema.EVENT_PRODUCT_VIEW,
    schema.EVENT_ADD_TO_CART,
    schema.EVENT_SEARCH,
)
TRUTH_COLUMNS = (
    simulation.TRUTH_IS_BUYER,
    simulation.TRUTH_SATISFACTION,
    simulation.TRUTH_DROPOUT_DATE,
    simulation.TRUTH_BASE_PURCHASE_RATE,
    simulation.TRUTH_PREFERRED_CATEGORIES,
    simulation.TRUTH_REPLENISHMENT_PRODUCT_ID,
    simulation.TRUTH_REPLENISHMENT_CYCLE_DAYS,
    simulation.TRUTH_SEASONAL_CATEGORY,
    simulation.TRUTH_SEASONAL_MONTH,
    simulation.TRUTH_GROUP_ID,
)


# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------
def expected_dtype(column: schema.Column) -> str:
    """The dtype pandas 3 gives when it reads the column back from Parquet."""
    if column.dtype == "int":
        return "int64" if column.required else "Int64"
    return {
        "id": "str",
        "string": "str",
        "timestamp": "datetime64[us]",
        "float": "float64",
        "bool": "boolean",
    }[column.dtype]


def purchases(data) -> pd.DataFrame:
    return data.transactions[data.transactions[schema.QUANTITY] > 0]


def active_span(data) -> tuple[pd.Series, pd.Series]:
    """Per customer (indexed by id): when they could first act and when they stopped."""
    signup = data.customers.set_index(schema.CUSTOMER_ID)[schema.SIGNUP_DATE]
    active_from = signup.clip(lower=data.start)
    dropout = data.customers_truth.set_index(schema.CUSTOMER_ID)[simulation.TRUTH_DROPOUT_DATE]
    return active_from, dropout.fillna(data.end + DAY)


def customer_time_keys(frame: pd.DataFrame, codes: dict[str, int], start: pd.Timestamp) -> np.ndarray:
    """One sortable integer per row: customer code in the high digits, seconds in the low ones."""
    seconds = ((frame[schema.TIMESTAMP] - start) // pd.Timedelta(seconds=1)).to_numpy()
    return frame[schema.CUSTOMER_ID].map(codes).to_numpy().astype(np.int64) * 10**10 + seconds


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------
# Determinism.
# ---------------------------------------------------------------------------
def test_same_seed_gives_identical_tables_and_truth():
    first_tables, first_truth = simulation.generate_tables(300, seed=11)
    second_tables, second_truth = simulation.generate_tables(300, seed=11)
    for name in first_tables:
        pd.testing.assert_frame_equal(first_tables[name], second_tables[name])
    for name in first_truth:
        pd.testing.assert_frame_equal(first_truth[name], second_truth[name])


def test_different_seeds_give_different_data():
    first, _ = simulation.generate_tables(300, seed=11)
    second, _ = simulation.generate_tables(300, seed=12)
    assert not first[schema.TRANSACTIONS].equals(second[schema.TRANSACTIONS])
    assert not first[schema.CUSTOMERS].equals(second[schema.CUSTOMERS])


def test_cli_writes_byte_identical_files_for_a_seed(tmp_path, capsys):
    for folder in ("a", "b"):
        assert run_cli(["--customers", "150", "--seed", "5", "--out", str(tmp_path / folder)], capsys)[0] == 0
    first = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    second = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert first == second and len(first) == 7
    for relative in first:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative


def test_several_blocks_assemble_into_one_consistent_data_set():
    """Small blocks exercise the multi-block path that 1,000,000 customers take."""
    config = dataclasses.replace(simulation.DEFAULT_CONFIG, block_size=70)
    tables, truth = simulation.generate_tables(200, seed=3, config=config)
    again, _ = simulation.generate_tables(200, seed=3, config=config)
    pd.testing.assert_frame_equal(tables[schema.EVENTS], again[schema.EVENTS])
    transactions = tables[schema.TRANSACTIONS]
    customer_numbers = transactions[schema.CUSTOMER_ID].str[1:].astype(int) - 1
    assert set(customer_numbers // config.block_size) == {0, 1, 2}
    assert not transactions.duplicated([schema.ORDER_ID, schema.PRODUCT_ID]).any()
    # Order ids rise with time across blocks, and each order has one customer and one time.
    orders = transactions.drop_duplicates(schema.ORDER_ID)
    assert orders[schema.ORDER_ID].is_monotonic_increasing
    assert orders[schema.TIMESTAMP].is_monotonic_increasing
    assert len(orders) == transactions[schema.ORDER_ID].nunique()
    assert tables[schema.EVENTS][schema.TIMESTAMP].is_monotonic_increasing
    assert len(truth[simulation.CUSTOMERS_TRUTH]) == 200


# ---------------------------------------------------------------------------
# The contract.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("table_name", list(schema.TABLES))
def test_tables_have_contract_columns_dtypes_and_values(generated_data, table_name):
    frame = generated_data.tables[table_name]
    table = schema.TABLES[table_name]
    assert tuple(frame.columns) == table.column_names
    for column in table.columns:
        values = frame[column.name]
        assert str(values.dtype) == expected_dtype(column), column.name
        if column.required:
            assert values.notna().all(), column.name
        present = values.dropna()
        if column.allowed is not None:
            assert set(present) <= set(column.allowed), column.name
        if column.min_value is not None:
            assert (present >= column.min_value).all(), column.name
        if column.max_value is not None:
            assert (present <= column.max_value).all(), column.name
        if column.nonzero:
            assert (present != 0).all(), column.name
    for key_column in table.unique_key:
        assert frame[key_column].notna().all()
    if table.unique_key:
        assert not frame.duplicated(list(table.unique_key)).any()


def test_parquet_files_read_back_as_the_generated_frames(generated_data):
    written = read_tables(generated_data.data_dir)
    assert set(written) == set(schema.TABLES)
    for name, frame in generated_data.tables.items():
        pd.testing.assert_frame_equal(written[name], frame)
    for name, frame in read_truth(generated_data.data_dir).items():
        pd.testing.assert_frame_equal(frame, generated_data.truth[name])


def test_ids_are_prefixed_strings(generated_data):
    assert generated_data.customers[schema.CUSTOMER_ID].str.fullmatch(r"C\d{7}").all()
    assert generated_data.products[schema.PRODUCT_ID].str.fullmatch(r"P\d{5}").all()
    assert generated_data.transactions[schema.ORDER_ID].str.fullmatch(r"O\d{8,}").all()


def test_records_reference_known_customers_and_products_after_signup(generated_data):
    customer_ids = set(generated_data.customers[schema.CUSTOMER_ID])
    product_ids = set(generated_data.products[schema.PRODUCT_ID])
    signup = generated_data.customers.set_index(schema.CUSTOMER_ID)[schema.SIGNUP_DATE]
    for frame in (generated_data.transactions, generated_data.events):
        assert set(frame[schema.CUSTOMER_ID]) <= customer_ids
        assert set(frame[schema.PRODUCT_ID].dropna()) <= product_ids
        first_record = frame.groupby(schema.CUSTOMER_ID)[schema.TIMESTAMP].min()
        assert (signup.reindex(first_record.index) <= first_record).all()
        assert frame[schema.TIMESTAMP].min() >= generated_data.start
        assert frame[schema.TIMESTAMP].max() < generated_data.end + DAY


def test_event_values_and_products_match_their_type(generated_data):
    events = generated_data.events
    event_type = events[schema.EVENT_TYPE]
    for type_name, low, high in schema.EVENT_VALUE_RANGES:
        values = events.loc[event_type == type_name, schema.VALUE]
        assert len(values) > 0 and values.between(low, high).all(), type_name
        assert (values == values.round()).all(), type_name
    valued = event_type.isin([type_name for type_name, _, _ in schema.EVENT_VALUE_RANGES])
    assert events.loc[~valued, schema.VALUE].isna().all()
    about_a_product = event_type.isin([schema.EVENT_PRODUCT_VIEW, schema.EVENT_ADD_TO_CART])
    assert events.loc[about_a_product, schema.PRODUCT_ID].notna().all()
    assert events.loc[~about_a_product, schema.PRODUCT_ID].isna().all()
    assert set(event_type) == set(schema.EVENT_TYPES)


def test_returns_are_separate_later_orders_of_bought_products(generated_data):
    transactions = generated_data.transactions
    returns = transactions[transactions[schema.QUANTITY] < 0]
    assert 0.01 < len(returns) / len(transactions) < 0.06
    return_orders = returns[schema.ORDER_ID]
    bought = transactions[transactions[schema.QUANTITY] > 0]
    assert not set(return_orders) & set(bought[schema.ORDER_ID])
    earliest_purchase = bought.groupby([schema.CUSTOMER_ID, schema.PRODUCT_ID])[schema.TIMESTAMP].min()
    matched = earliest_purchase.reindex(
        pd.MultiIndex.from_frame(returns[[schema.CUSTOMER_ID, schema.PRODUCT_ID]])
    ).to_numpy()
    assert (matched < returns[schema.TIMESTAMP].to_numpy()).all()  # NaT (no purchase) fails too


def test_discounts_channels_and_prices_vary(generated_data):
    transactions = generated_data.transactions
    assert 0.05 < transactions[schema.DISCOUNT].notna().mean() < 0.5
    assert transactions[schema.CHANNEL].nunique() >= 4
    # Each customer has a favourite channel. Among regular buyers their top channel's share of
    # orders is about 0.65; if everyone shared the population mix it would be about 0.45.
    orders = transactions.drop_duplicates(schema.ORDER_ID)
    per_channel = orders.groupby([schema.CUSTOMER_ID, schema.CHANNEL]).size()
    per_customer = per_channel.groupby(level=schema.CUSTOMER_ID)
    n_orders = per_customer.sum()
    top_share = (per_customer.max() / n_orders)[n_orders >= 10]
    assert top_share.mean() > 0.55


def test_truth_stays_out_of_the_tables(generated_data):
    for frame in generated_data.tables.values():
        assert not set(frame.columns) & set(TRUTH_COLUMNS)
    assert (generated_data.data_dir / simulation.TRUTH_DIR_NAME / "truth.json").exists()


# ---------------------------------------------------------------------------
# Customers.
# ---------------------------------------------------------------------------
def test_customers_sign_up_over_time_and_some_attributes_are_missing(generated_data):
    signup = generated_data.customers[schema.SIGNUP_DATE]
    assert 0.1 < (signup < generated_data.start).mean() < 0.4
    assert signup[signup >= generated_data.start].dt.to_period("M").nunique() >= 30
    for column in schema.CUSTOMERS_TABLE.optional_columns:
        assert 0.0 < generated_data.customers[column].isna().mean() < 0.15, column


def test_product_catalogue_size_rule():
    config = simulation.DEFAULT_CONFIG
    assert config.n_products(1_000) == 200
    assert config.n_products(100_000) == 5_000
    assert config.n_products(1_000_000) == 50_000


# ---------------------------------------------------------------------------
# The hidden structure.
# ---------------------------------------------------------------------------
def all_before_dropout(frame: pd.DataFrame, active_until: pd.Series) -> bool:
    limit = active_until.reindex(frame[schema.CUSTOMER_ID]).to_numpy()
    return bool((frame[schema.TIMESTAMP].to_numpy() < limit).all())


def test_no_purchases_and_no_visits_after_dropout(generated_data):
    _, active_until = active_span(generated_data)
    assert all_before_dropout(generated_data.transactions, active_until)  # returns included
    events = generated_data.events
    assert all_before_dropout(events[events[schema.EVENT_TYPE] != schema.EVENT_EMAIL_OPEN], active_until)
    # Only email opens continue afterwards, and they do happen.
    assert not all_before_dropout(events, active_until)
    truth = generated_data.customers_truth
    assert 0.2 < truth[simulation.TRUTH_DROPOUT_DATE].notna().mean() < 0.7


def test_dropouts_have_lower_nps_and_more_tickets(generated_data):
    events = generated_data.events
    active_from, active_until = active_span(generated_data)
    years = ((active_until - active_from) / DAY / 365.25).clip(lower=1 / 12)
    dropped = generated_data.customers_truth.set_index(schema.CUSTOMER_ID)[simulation.TRUTH_DROPOUT_DATE].notna()
    nps = (
        events[events[schema.EVENT_TYPE] == schema.EVENT_NPS_RESPONSE].groupby(schema.CUSTOMER_ID)[schema.VALUE].mean()
    )
    assert nps[dropped.reindex(nps.index)].mean() < nps[~dropped.reindex(nps.index)].mean() - 0.5
    tickets = (
        events[events[schema.EVENT_TYPE] == schema.EVENT_SUPPORT_TICKET]
        .groupby(schema.CUSTOMER_ID)
        .size()
        .reindex(years.index, fill_value=0)
    )
    ticket_rate = tickets / years
    assert ticket_rate[dropped].mean() > 1.5 * ticket_rate[~dropped].mean()


def test_bought_together_groups_co_occur_far_above_chance(generated_data):
    lines = purchases(generated_data)[[schema.ORDER_ID, schema.PRODUCT_ID]]
    n_orders = lines[schema.ORDER_ID].nunique()
    orders_with = lines.groupby(schema.PRODUCT_ID)[schema.ORDER_ID].nunique()
    groups = generated_data.product_groups
    pairs = groups.merge(groups, on=simulation.TRUTH_GROUP_ID, suffixes=("_a", "_b"))
    product_a, product_b = schema.PRODUCT_ID + "_a", schema.PRODUCT_ID + "_b"
    pairs = pairs[pairs[product_a] < pairs[product_b]]
    together = lines.merge(lines, on=schema.ORDER_ID, suffixes=("_a", "_b")).merge(pairs, on=[product_a, product_b])
    expected = (
        orders_with.reindex(pairs[product_a]).fillna(0).to_numpy()
        * orders_with.reindex(pairs[product_b]).fillna(0).to_numpy()
    ).sum() / n_orders
    assert len(pairs) >= 10
    assert len(together) / expected > 5


def test_replenishment_gaps_follow_each_customers_cycle(generated_data):
    truth = generated_data.customers_truth.dropna(subset=[simulation.TRUTH_REPLENISHMENT_PRODUCT_ID])
    refills = (
        purchases(generated_data)
        .merge(
            truth,
            left_on=[schema.CUSTOMER_ID, schema.PRODUCT_ID],
            right_on=[schema.CUSTOMER_ID, simulation.TRUTH_REPLENISHMENT_PRODUCT_ID],
        )
        .sort_values([schema.CUSTOMER_ID, schema.TIMESTAMP])
    )
    gap_days = refills.groupby(schema.CUSTOMER_ID)[schema.TIMESTAMP].diff() / DAY
    ratio = (gap_days / refills[simulation.TRUTH_REPLENISHMENT_CYCLE_DAYS]).dropna()
    per_customer = ratio.groupby(refills.loc[ratio.index, schema.CUSTOMER_ID]).median()
    assert len(per_customer) >= 50
    assert (per_customer - 1).abs().lt(0.2).mean() > 0.9
    assert ratio.median() == pytest.approx(1.0, abs=0.05)
    # Cycles come from the product's pack size.
    days = generated_data.products.set_index(schema.PRODUCT_ID)[schema.REPLENISHMENT_DAYS]
    cycle_ratio = (
        truth[simulation.TRUTH_REPLENISHMENT_CYCLE_DAYS].to_numpy()
        / days.reindex(truth[simulation.TRUTH_REPLENISHMENT_PRODUCT_ID]).to_numpy()
    )
    assert np.all(np.abs(cycle_ratio - 1) <= simulation.DEFAULT_CONFIG.replenishment_cycle_spread + 1e-9)


def test_seasonal_buyers_buy_their_category_in_their_month(generated_data):
    truth = generated_data.customers_truth.dropna(subset=[simulation.TRUTH_SEASONAL_CATEGORY])
    bought = (
        purchases(generated_data)
        .merge(generated_data.products[[schema.PRODUCT_ID, schema.CATEGORY]], on=schema.PRODUCT_ID)
        .merge(truth, on=schema.CUSTOMER_ID)
    )
    in_category = bought[bought[schema.CATEGORY] == bought[simulation.TRUTH_SEASONAL_CATEGORY]]
    in_category = in_category.drop_duplicates(schema.ORDER_ID)
    in_month = in_category[schema.TIMESTAMP].dt.month == in_category[simulation.TRUTH_SEASONAL_MONTH]
    assert in_month.mean() > 2.5 / 12


def test_browsing_bursts_precede_purchases(generated_data):
    """Browsing from 7 days to 1 hour before a purchase (so not just the checkout session)."""
    codes = {customer: code for code, customer in enumerate(generated_data.customers[schema.CUSTOMER_ID])}
    events = generated_data.events
    browsing = events[events[schema.EVENT_TYPE].isin(BROWSING_EVENTS)]
    browsing_keys = np.sort(customer_time_keys(browsing, codes, generated_data.start))
    orders = purchases(generated_data).drop_duplicates(schema.ORDER_ID)
    order_keys = customer_time_keys(orders, codes, generated_data.start)
    week, hour = 7 * 86_400, 3_600
    lead_up = np.searchsorted(browsing_keys, order_keys - hour, side="left") - np.searchsorted(
        browsing_keys, order_keys - week, side="left"
    )
    rate_before = lead_up.mean() / (7 - 1 / 24)
    active_from, active_until = active_span(generated_data)
    active_days = ((active_until - active_from) / DAY).clip(lower=0).sum()
    baseline_rate = len(browsing) / active_days
    assert rate_before > 2 * baseline_rate  # about 3x here; about 1x without the lead-up
    assert (lead_up > 0).mean() > 0.4


def test_abandoned_carts_exist(generated_data):
    events = generated_data.events
    carts = events[events[schema.EVENT_TYPE] == schema.EVENT_ADD_TO_CART].reset_index(drop=True)
    bought = purchases(generated_data)[[schema.CUSTOMER_ID, schema.PRODUCT_ID, schema.TIMESTAMP]]
    matched = carts.reset_index().merge(bought, on=[schema.CUSTOMER_ID, schema.PRODUCT_ID], suffixes=("", "_bought"))
    delay = matched[schema.TIMESTAMP + "_bought"] - matched[schema.TIMESTAMP]
    followed = matched.loc[(delay >= pd.Timedelta(0)) & (delay <= 7 * DAY), "index"].unique()
    abandoned_share = 1 - len(followed) / len(carts)
    assert 0.05 < abandoned_share < 0.5


def test_some_visitors_browse_but_never_buy(generated_data):
    customers = generated_data.customers[schema.CUSTOMER_ID]
    has_transactions = customers.isin(generated_data.transactions[schema.CUSTOMER_ID].unique())
    has_events = customers.isin(generated_data.events[schema.CUSTOMER_ID].unique())
    assert 0.12 < (has_events & ~has_transactions).mean() < 0.3
    truth = generated_data.customers_truth
    visitors = truth.loc[~truth[simulation.TRUTH_IS_BUYER], schema.CUSTOMER_ID]
    assert 0.1 < len(visitors) / len(truth) < 0.25
    assert not visitors.isin(customers[has_transactions]).any()
    assert visitors.isin(customers[has_events]).all()


def test_purchase_rates_are_heterogeneous_and_match_the_truth(generated_data):
    truth = generated_data.customers_truth.set_index(schema.CUSTOMER_ID)
    buyers = truth.index[truth[simulation.TRUTH_IS_BUYER]]
    order_counts = (
        purchases(generated_data).groupby(schema.CUSTOMER_ID)[schema.ORDER_ID].nunique().reindex(buyers, fill_value=0)
    )
    assert order_counts.var() > 3 * order_counts.mean()  # far more spread than Poisson
    active_from, active_until = active_span(generated_data)
    years = ((active_until - active_from) / DAY / 365.25).reindex(buyers).clip(lower=0.25)
    observed_rate = order_counts / years
    true_rate = truth.loc[buyers, simulation.TRUTH_BASE_PURCHASE_RATE]
    # Spearman as Pearson on ranks (method="spearman" imports scipy.stats, seconds of overhead).
    assert observed_rate.rank().corr(true_rate.rank()) > 0.3


def test_buyers_favour_their_preferred_categories(generated_data):
    catalogue = generated_data.products.set_index(schema.PRODUCT_ID)
    bought = purchases(generated_data)
    bought = bought[catalogue[schema.REPLENISHMENT_DAYS].reindex(bought[schema.PRODUCT_ID]).isna().to_numpy()]
    category = catalogue[schema.CATEGORY].reindex(bought[schema.PRODUCT_ID]).to_numpy()
    preferred = (
        generated_data.customers_truth.set_index(schema.CUSTOMER_ID)[simulation.TRUTH_PREFERRED_CATEGORIES]
        .reindex(bought[schema.CUSTOMER_ID])
        .str.split(simulation.PREFERRED_CATEGORIES_SEPARATOR)
    )
    in_preferred = [cat in top for cat, top in zip(category, preferred, strict=True)]
    durable_categories = sum(not c.is_replenishable for c in simulation.DEFAULT_CONFIG.categories)
    chance = simulation.PREFERRED_CATEGORIES_COUNT / durable_categories
    assert np.mean(in_preferred) > 2 * chance


# ---------------------------------------------------------------------------
# The command line.
# ---------------------------------------------------------------------------
def test_cli_writes_tables_truth_and_a_one_line_summary(tmp_path, capsys):
    code, out, _ = run_cli(["--customers", "120", "--seed", "4", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert len(out.strip().splitlines()) == 1 and "120 customers" in out
    for name in schema.TABLES:
        assert (tmp_path / f"{name}.parquet").exists()
    truth_folder = tmp_path / simulation.TRUTH_DIR_NAME
    assert {p.name for p in truth_folder.iterdir()} == {
        f"{simulation.CUSTOMERS_TRUTH}.parquet",
        f"{simulation.PRODUCT_GROUPS}.parquet",
        simulation.TRUTH_SUMMARY_FILE,
    }
    assert len(read_truth(tmp_path)[simulation.CUSTOMERS_TRUTH]) == 120


def test_cli_csv_format_holds_the_same_rows(tmp_path, capsys):
    args = ["--customers", "120", "--seed", "4", "--start", "2024-01-01", "--end", "2024-06-30"]
    assert run_cli([*args, "--out", str(tmp_path / "pq")], capsys)[0] == 0
    assert run_cli([*args, "--out", str(tmp_path / "csv"), "--format", "csv"], capsys)[0] == 0
    parquet_tables = read_tables(tmp_path / "pq")
    for name in schema.TABLES:
        from_csv = read_table(tmp_path / "csv" / f"{name}.csv")
        assert list(from_csv.columns) == list(parquet_tables[name].columns)
        assert len(from_csv) == len(parquet_tables[name]) > 0
    transactions = parquet_tables[schema.TRANSACTIONS]
    assert transactions[schema.TIMESTAMP].min() >= pd.Timestamp("2024-01-01")
    assert transactions[schema.TIMESTAMP].max() < pd.Timestamp("2024-07-01")


@pytest.mark.parametrize(
    "bad_args",
    [
        ["--customers", "0", "--seed", "1"],
        ["--customers", "many", "--seed", "1"],
        ["--customers", "10", "--seed", "-3"],
        ["--customers", "10", "--seed", "1", "--format", "xlsx"],
        ["--customers", "10", "--seed", "1", "--start", "first of May"],
        ["--customers", "10", "--seed", "1", "--start", "2025-01-01", "--end", "2024-01-01"],
        ["--customers", "10", "--seed", "1", "--colour", "blue"],
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, bad_args):
    code, out, err = run_cli([*bad_args, "--out", str(tmp_path / "out")], capsys)
    assert code == EXIT_USER_ERROR
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "out").exists()


def test_output_folder_with_the_other_format_is_refused(tmp_path, capsys):
    (tmp_path / f"{schema.EVENTS}.csv").write_text("x\n")
    code, _, err = run_cli(["--customers", "10", "--seed", "1", "--out", str(tmp_path)], capsys)
    assert code == EXIT_USER_ERROR and "events.csv" in err


def test_module_entry_point_exits_2_on_a_bad_option(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.generate",
            "--customers",
            "-5",
            "--seed",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=60,
    )
    assert result.returncode == EXIT_USER_ERROR
    assert len(result.stderr.strip().splitlines()) == 1
