"""What each customer is due to buy next, per product: when, within what interval, how likely, and why.

`build_due_products(transactions, products, as_of)` returns one row per (customer, product) that is
due, with `due_date`, an interval [`due_low`, `due_high`], `due_probability`, a `due_reason` a
marketer can read, `due_kind` and `expected_quantity`, sorted by customer and soonest first.
Pure code: frames in, a frame out.

The cutoff rule: only purchase lines (quantity > 0) strictly before `as_of` are read; anything at or
after it never changes a row. All purchases of one product on one calendar day are one purchase
(their quantities added), so a gap between purchases is always at least one day.

Replenishment (`due_kind` "replenishment"): a (customer, product) pair is repeatable when the
catalogue gives the product a `replenishment_days` > 0 (a consumable) or the customer bought it on
two days or more.
- The customer's own cycle is the median gap between their purchase days of the product (the median,
  because one skipped reorder doubles a gap). It is shrunk toward the product's typical cycle, the
  prior: the catalogue's `replenishment_days` where given, else the median over customers of their
  own cycles of that product (from the same history before as_of, so it is point in time), else
  there is no prior. With n observed gaps and prior strength k (`DueConfig.prior_strength`, 2):
  cycle = (n * own + k * prior) / (n + k) (`shrink_cycle`). One gap is weak evidence (a customer
  who bought twice in a week is not on a weekly cycle); ten gaps outweigh the catalogue.
- due_date = last purchase + cycle. The next gap is taken as log-normal around the cycle (gaps are
  positive and their errors multiplicative). Its log-scale spread adds two parts: how irregular the
  customer's gaps are (their spread around the own median, pooled with the product's typical spread
  with weight `spread_prior_strength`, so that two gaps which happen to agree do not claim
  clockwork), and how uncertain the cycle is: `cycle_log_sd`**2 * k / (n + k) with a prior (all of
  it for a customer who never repeated, so they get a wide interval), irregularity / n without one.
  The interval is that distribution's central `interval` (80 %).
- An overdue pair (due_date before as_of) stays, saying "overdue" in its reason, and is due now in a
  `within_days` query: the customer is late, which is when a reminder matters most. A pair overdue
  by more than `max_overdue_cycles` (3) cycles is lapsed and dropped: they buy it elsewhere or not
  at all.
- Reasons: "bought every 28 days, last 26 days ago"; "usually restocked every 30 days (never
  repeated yet), last 20 days ago"; "bought twice, 20 days apart (usually every 30 days), last 5 days
  ago" where the product's cycle moved the due date by more than a quarter; "overdue: " first.

Seasonal (`due_kind` "seasonal"): categories bought in the same calendar window in several years.
- Windows are centred every 365.2425 / 24 (15.2) days from 1 January, and span
  +-`seasonal_window_days` (15) days, so a habit near a month's edge still falls in one window. A
  (customer, category) is seasonal in a window when they bought the category in it in at least
  `min_seasonal_years` (2) distinct seasons (years), and that many would be unlikely by chance: the
  probability of at least that many of the seasons seen holding a purchase, were the customer to buy
  the category in the window only as often as outside it, is at most `max_seasonal_chance` (0.01).
  Someone who buys shirts every month buys them every January too: that is a habit, not a season.
  Of a (customer, category)'s qualifying windows the one with the most years (then purchases, then
  purchases nearest its centre) is kept. The "unknown" category is never seasonal.
- Due at the median day of those purchases within the window, in the next season whose interval has
  not ended before as_of and in which the customer has not bought yet ("due now: " when that season
  has begun). Interval: +- z * the spread of the yearly mean days, pooled with a day uniform over
  the window (weight `spread_prior_strength`), at least +-`seasonal_min_half_width_days` (7).
  expected_quantity: the median over those years of the units bought in the window. Reason: "bought
  5 shirts each January for 2 years" (or "1-3 ...", "in 2 of the last 3 years").
- `category` names the category and `product_id` is the customer's most bought product of it in those
  windows (ties: the latest bought, then the first id): the campaign is for the category, the
  product is the likely pick.

Probability: the chance that the purchase falls in the query window [as_of, as_of + w), w =
`within_days` or `probability_window_days` (30), given none since the last one (this season's, for a
seasonal row). With the timing T (the log-normal next gap, or a normal around the seasonal due day)
and the chance r that it happens at all: r * (S(a) - S(b)) / (1 - r + r * S(a)), S being T's
survival function at the window's start a and end b. For replenishment r is the product's reorder
share, the share of its purchases followed by another by the same customer within two typical
cycles (`ProductCycles`; after a first purchase for a customer who has not repeated, after a repeat
for one who has); for seasonal rows, the share of the seasons seen since the customer's first
purchase in which they bought. Both Laplace-smoothed. The customer's own chance of having churned
is not in it.

With `within_days`, only rows whose interval reaches into the window are kept: due_low before its
end (every row left has an interval ending on or after as_of, or is overdue and so due now).

A customer's rows depend only on their own purchases and on `ProductCycles` (each product's typical
cycle, gap spread and reorder shares), built from the transactions passed unless given. A caller
serving one customer at a time builds it once from everyone's history (`build_product_cycles`) and
passes it with the customer's transactions: that gives the customer's rows of the bulk call.
Everything runs on integer codes with sorts, `bincount` and `reduceat`: no Python loop over
customers, except to write the reasons.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import special

from features import schema as s
from features.records import FEW_VALUES, ProductLookup, build_products_table, day_of, median_by_group

OUTPUT_COLUMNS = (
    s.CUSTOMER_ID,
    s.PRODUCT_ID,
    s.CATEGORY,
    s.DUE_DATE,
    s.DUE_LOW,
    s.DUE_HIGH,
    s.DUE_PROBABILITY,
    s.DUE_REASON,
    s.DUE_KIND,
    s.EXPECTED_QUANTITY,
)
KINDS = (s.DUE_REPLENISHMENT, s.DUE_SEASONAL)
_KIND_LABELS = pd.array(KINDS, dtype="str")

# Seasons repeat every mean Gregorian year from 1970-01-01 (day 0), within a day of the calendar.
DAYS_PER_YEAR = 365.2425
SEASON_SLOTS = 24  # window centres per year, half a month apart
_SD_PER_MEAN_ABSOLUTE_DEVIATION = float(np.sqrt(np.pi / 2))  # a normal's sd / its mean absolute deviation
# Reorder shares: a purchase counts as followed by another within this many typical cycles.
_REORDER_CYCLES = 2.0


@dataclass(frozen=True)
class DueConfig:
    """The rules' settings (see the module docstring for what each does)."""

    prior_strength: float = 2.0  # k: the prior cycle counts as this many observed gaps
    interval: float = 0.8  # central probability of [due_low, due_high]
    max_overdue_cycles: float = 3.0  # overdue by more than this many cycles: lapsed, dropped
    gap_log_sd: float = 0.25  # spread of a customer's log gaps when the product has too few repeaters
    cycle_log_sd: float = 0.35  # how far a customer's cycle strays from the product's typical one (log)
    spread_prior_strength: float = 4.0  # a prior spread counts as this many degrees of freedom
    probability_window_days: float = 30.0  # the query window when within_days is None
    min_seasonal_years: int = 2
    max_seasonal_chance: float = 0.01  # how likely the years' hits could be the customer's usual buying
    seasonal_window_days: float = 15.0  # half-width of a seasonal window
    seasonal_min_half_width_days: float = 7.0

    def __post_init__(self) -> None:
        if not 0 < self.interval < 1:
            raise ValueError(f"DueConfig.interval must be between 0 and 1, got {self.interval}")
        if self.min_seasonal_years < 2:
            raise ValueError(f"DueConfig.min_seasonal_years must be at least 2, got {self.min_seasonal_years}")
        if not 0 < self.seasonal_window_days < DAYS_PER_YEAR / 4:
            raise ValueError(f"DueConfig.seasonal_window_days must be in (0, 91), got {self.seasonal_window_days}")
        for name in (
            "prior_strength",
            "max_overdue_cycles",
            "gap_log_sd",
            "cycle_log_sd",
            "spread_prior_strength",
            "probability_window_days",
            "max_seasonal_chance",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"DueConfig.{name} must be > 0, got {getattr(self, name)}")

    @property
    def z(self) -> float:
        """The standard normal quantile of the interval's upper end (1.28 for 80 %)."""
        return float(special.ndtri(0.5 + self.interval / 2))


@dataclass(frozen=True)
class ProductCycles:
    """Per product of `lookup` (in its order): what a customer's cycle is shrunk toward.

    Built once by `build_product_cycles` from purchases strictly before `as_of`.
    """

    as_of: pd.Timestamp
    lookup: ProductLookup
    typical_cycle_days: np.ndarray  # the catalogue's replenishment_days, else the median own cycle; NaN: none
    gap_log_sd: np.ndarray  # typical spread of a customer's log gaps between purchases of the product
    # the share of purchases followed by another within two typical cycles: after a customer's first
    # purchase of the product, and after a repeat (NaN without a typical cycle)
    first_reorder_share: np.ndarray
    reorder_share: np.ndarray

    def locate_products(self, product_ids: Sequence) -> np.ndarray:
        """Each id's position in the lookup, -1 when not in it."""
        if len(product_ids) > FEW_VALUES:
            return self.lookup.product_index.get_indexer(product_ids)
        # a dictionary per call beats get_indexer's fixed cost (an Index of the ids) on a request's few ids
        positions = self._positions
        return np.fromiter((positions.get(p, -1) for p in product_ids), dtype=np.int64, count=len(product_ids))

    @cached_property
    def _positions(self) -> dict:
        return {product: position for position, product in enumerate(self.lookup.product_index.tolist())}

    @cached_property
    def category_labels(self) -> pd.api.extensions.ExtensionArray:
        """The lookup's categories as a string array, to take the output column from."""
        return pd.array(self.lookup.categories, dtype="str")


def build_product_cycles(
    transactions: pd.DataFrame, products: pd.DataFrame | None, as_of, config: DueConfig = DueConfig()
) -> ProductCycles:
    """Each product's typical cycle, gap spread and reorder shares, from purchases strictly before as_of.

    Every product of `products` plus any other product in the transactions (category 'unknown').
    """
    as_of = _check_as_of(as_of)
    lookup = ProductLookup(build_products_table(products, transactions))
    purchases = _read_purchase_days(transactions, as_of, lookup.product_index.get_indexer)
    return _measure_products(_summarise_pairs(purchases), purchases, lookup, as_of, config)


def build_due_products(
    transactions: pd.DataFrame,
    products: pd.DataFrame | None,
    as_of,
    within_days: float | None = None,
    config: DueConfig = DueConfig(),
    product_cycles: ProductCycles | None = None,
) -> pd.DataFrame:
    """What each customer is due to buy next, per product (see the module docstring for the rules).

    `transactions`: customer_id, product_id, quantity, timestamp (other columns are ignored);
    `products`: the catalogue (product_id, category, replenishment_days), not read when
    `product_cycles` is given (it carries the catalogue it was built with). `product_cycles` built
    at a later as_of than this one raises ValueError (it would leak the future).

    Returns OUTPUT_COLUMNS, sorted by customer_id then due_date (soonest first, then kind and
    product_id); dates are midnights; an empty frame when no customer has anything due.
    """
    return _to_frame(*_due_rows(transactions, products, as_of, within_days, config, product_cycles))


def due_items(
    transactions: pd.DataFrame,
    as_of,
    within_days: float | None,
    product_cycles: ProductCycles,
    config: DueConfig = DueConfig(),
) -> list[dict]:
    """One customer's rows of `build_due_products` (their transactions, the product cycles built from
    everyone's), in its order, as the service answers them: product_id, category, due_date, due_low,
    due_high (ISO dates), due_probability, due_kind, expected_quantity, due_reason. The same rows
    without a frame, whose construction and conversion cost more than the rules for a few lines."""
    due, purchases, _ = _due_rows(transactions, None, as_of, within_days, config, product_cycles)
    order, day, low, high = _output_order(due, purchases)
    categories = product_cycles.lookup.categories
    dates = {
        name: np.datetime_as_string(days.astype("datetime64[D]"), unit="D").tolist()
        for name, days in ((s.DUE_DATE, day), (s.DUE_LOW, low), (s.DUE_HIGH, high))
    }
    return [
        {
            s.PRODUCT_ID: str(purchases.item_ids[item]),
            s.CATEGORY: str(categories[category]),
            s.DUE_DATE: dates[s.DUE_DATE][position],
            s.DUE_LOW: dates[s.DUE_LOW][position],
            s.DUE_HIGH: dates[s.DUE_HIGH][position],
            s.DUE_PROBABILITY: probability,
            s.DUE_KIND: KINDS[kind],
            s.EXPECTED_QUANTITY: quantity,
            s.DUE_REASON: str(reason),
        }
        for position, (item, category, probability, kind, quantity, reason) in enumerate(
            zip(
                due.item[order].tolist(),
                due.category[order].tolist(),
                due.probability[order].tolist(),
                due.kind[order].tolist(),
                due.quantity[order].astype(np.float64).tolist(),
                due.reason[order].tolist(),
                strict=True,
            )
        )
    ]


def _due_rows(
    transactions: pd.DataFrame,
    products: pd.DataFrame | None,
    as_of,
    within_days: float | None,
    config: DueConfig,
    product_cycles: ProductCycles | None,
) -> tuple[_Due, _PurchaseDays, pd.api.extensions.ExtensionArray]:
    """The due rows as arrays, unordered, with the purchases they index and the category labels."""
    as_of = _check_as_of(as_of)
    if within_days is not None and not within_days > 0:
        raise ValueError(f"within_days must be > 0 (or None for every due product), got {within_days}")
    if product_cycles is None:  # everyone's cycles from these transactions, read once
        lookup = ProductLookup(build_products_table(products, transactions))
        purchases = _read_purchase_days(transactions, as_of, lookup.product_index.get_indexer)
        pairs = _summarise_pairs(purchases)
        product_cycles = _measure_products(pairs, purchases, lookup, as_of, config)
    elif product_cycles.as_of > as_of:
        raise ValueError(
            f"product_cycles were built at {product_cycles.as_of}, after as_of {as_of}: they would leak the future"
        )
    else:
        purchases = _read_purchase_days(transactions, as_of, product_cycles.locate_products)
        pairs = _summarise_pairs(purchases)
    if not len(purchases.day):
        return _empty_due(), purchases, product_cycles.category_labels
    now = day_of(as_of)
    window = _Window(
        now=now,
        days=float(within_days if within_days is not None else config.probability_window_days),
        until=now + within_days if within_days is not None else np.inf,
    )
    rows = [
        _build_replenishment(pairs, purchases, product_cycles, window, config),
        _build_seasonal(purchases, pairs, product_cycles.lookup, window, config),
    ]
    due = _Due(*(np.concatenate([getattr(part, name) for part in rows]) for name in _Due._fields))
    return due, purchases, product_cycles.category_labels


class _Window(NamedTuple):
    """The query window, in days since 1970-01-01: [now, now + days); rows are kept while due_low < until."""

    now: float
    days: float
    until: float


def shrink_cycle(own_cycle, n_gaps, prior, prior_strength: float) -> np.ndarray:
    """A customer's cycle in days: their own median gap shrunk toward the product's typical cycle.

    (n * own + k * prior) / (n + k) with n = n_gaps and k = prior_strength where the prior is known
    (> 0), else k = 0 (the own cycle alone). The prior alone where n is 0 (own_cycle is then not
    read, NaN is fine); NaN with neither. Element-wise over arrays.
    """
    n = np.asarray(n_gaps, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64)
    k = np.where(prior > 0, prior_strength, 0.0)
    own = np.where(n > 0, np.asarray(own_cycle, dtype=np.float64), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # neither: 0 / 0
        return (n * own + k * np.where(k > 0, prior, 0.0)) / (n + k)


# ---------------------------------------------------------------------------
# Purchases as codes: one entry per (customer, product, calendar day).
# ---------------------------------------------------------------------------
class _PurchaseDays(NamedTuple):
    """Purchases strictly before as_of, one entry per (customer, item, day), sorted so."""

    customer: np.ndarray  # position in customer_ids (sorted by id)
    item: np.ndarray  # position in item_ids (the transactions' own product codes)
    day: np.ndarray  # calendar day, days since 1970-01-01
    quantity: np.ndarray  # units bought that day
    customer_ids: pd.api.extensions.ExtensionArray | np.ndarray
    item_ids: pd.api.extensions.ExtensionArray | np.ndarray
    item_product: np.ndarray  # each item's position in the product lookup, -1 when not in it


def _read_purchase_days(
    transactions: pd.DataFrame, as_of: pd.Timestamp, locate_products: Callable[[Sequence], np.ndarray]
) -> _PurchaseDays:
    timestamps = transactions[s.TIMESTAMP].to_numpy(dtype="datetime64[ns]")
    quantity = transactions[s.QUANTITY].to_numpy(dtype=float, na_value=np.nan)
    # factorised as arrays, so the ids stay arrays (taking from an Index costs more per request)
    customer_codes, customer_uniques = pd.factorize(transactions[s.CUSTOMER_ID].array)
    item_codes, item_ids = pd.factorize(transactions[s.PRODUCT_ID].array)
    keep = (timestamps < as_of.to_datetime64()) & s.is_purchase(quantity) & (customer_codes >= 0) & (item_codes >= 0)
    customer_codes, item_codes, quantity = customer_codes[keep], item_codes[keep], quantity[keep]
    day = timestamps[keep].astype("datetime64[D]").astype(np.int64)
    # customers sorted by id, so that the output's order needs no string sort
    present = np.flatnonzero(np.bincount(customer_codes, minlength=len(customer_uniques)) > 0)
    if len(present) == len(customer_uniques) == 1:  # one customer (the service's call): nothing to sort
        customer, customer_ids = customer_codes.astype(np.int64), customer_uniques
    else:
        by_id = present[customer_uniques.take(present).argsort()] if len(present) else present
        rank = np.full(len(customer_uniques), -1, dtype=np.int64)
        rank[by_id] = np.arange(len(by_id))
        customer, customer_ids = rank[customer_codes], customer_uniques.take(by_id)
    item = item_codes.astype(np.int64)
    order = _sort_order(customer, item, day)
    customer, item, day, quantity = customer[order], item[order], day[order], quantity[order]
    starts = _run_starts(customer, item, day)
    return _PurchaseDays(
        customer=customer[starts],
        item=item[starts],
        day=day[starts],
        quantity=np.add.reduceat(quantity, starts) if len(starts) else quantity,
        customer_ids=customer_ids,
        item_ids=item_ids,
        item_product=np.asarray(locate_products(item_ids), dtype=np.int64),
    )


class _Pairs(NamedTuple):
    """One entry per (customer, item) bought, in the purchase days' order."""

    customer: np.ndarray
    item: np.ndarray
    first_day: np.ndarray
    last_day: np.ndarray
    n_gaps: np.ndarray  # purchase days - 1
    own_cycle: np.ndarray  # median gap in days; NaN without a gap
    own_log_sd: np.ndarray  # spread of the log gaps around the median; NaN with fewer than two gaps
    quantity: np.ndarray  # median units per purchase day
    day_pair: np.ndarray  # the pair of each purchase day


def _summarise_pairs(purchases: _PurchaseDays) -> _Pairs:
    starts = _run_starts(purchases.customer, purchases.item)
    n_pairs = len(starts)
    day_pair = np.repeat(np.arange(n_pairs), np.diff(np.r_[starts, len(purchases.day)]))
    ends = (np.r_[starts[1:], len(purchases.day)] - 1)[:n_pairs]  # no pair: no end
    same_pair = day_pair[1:] == day_pair[:-1]
    gap_pair = day_pair[1:][same_pair]
    gaps = np.diff(purchases.day)[same_pair].astype(np.float64)
    n_gaps = np.bincount(gap_pair, minlength=n_pairs)
    own_cycle = median_by_group(gap_pair, gaps, n_pairs)
    deviation = np.abs(np.log(gaps) - np.log(own_cycle[gap_pair]))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_deviation = np.bincount(gap_pair, weights=deviation, minlength=n_pairs) / n_gaps
    return _Pairs(
        customer=purchases.customer[starts],
        item=purchases.item[starts],
        first_day=purchases.day[starts],
        last_day=purchases.day[ends],
        n_gaps=n_gaps,
        own_cycle=own_cycle,
        own_log_sd=np.where(n_gaps >= 2, mean_deviation * _SD_PER_MEAN_ABSOLUTE_DEVIATION, np.nan),
        quantity=median_by_group(day_pair, purchases.quantity, n_pairs),
        day_pair=day_pair,
    )


def _measure_products(
    pairs: _Pairs, purchases: _PurchaseDays, lookup: ProductLookup, as_of: pd.Timestamp, config: DueConfig
) -> ProductCycles:
    n_products = len(lookup.product_index)
    catalogue_days = lookup.product_replenishment_days
    product = purchases.item_product[pairs.item]
    known = product >= 0
    product, n_gaps = product[known], pairs.n_gaps[known]
    repeated = n_gaps >= 1
    median_cycle = median_by_group(product[repeated], pairs.own_cycle[known][repeated], n_products)
    typical = np.where(catalogue_days > 0, catalogue_days, median_cycle)

    dof = np.maximum(n_gaps - 1, 0).astype(np.float64)
    squares = dof * np.nan_to_num(pairs.own_log_sd[known]) ** 2
    k = config.spread_prior_strength
    pooled = (np.bincount(product, weights=squares, minlength=n_products) + k * config.gap_log_sd**2) / (
        np.bincount(product, weights=dof, minlength=n_products) + k
    )

    first_share, repeat_share = _measure_reorders(purchases, pairs, typical, day_of(as_of))
    return ProductCycles(
        as_of=as_of,
        lookup=lookup,
        typical_cycle_days=typical,
        gap_log_sd=np.sqrt(pooled),
        first_reorder_share=first_share,
        reorder_share=repeat_share,
    )


def _measure_reorders(
    purchases: _PurchaseDays, pairs: _Pairs, typical: np.ndarray, now: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per product, the share of purchases followed by another of the same product by the same customer
    within _REORDER_CYCLES typical cycles: (after a first purchase, after a repeat), Laplace-smoothed;
    only purchases with that much time before as_of count. NaN for a product without a typical cycle."""
    n_products = len(typical)
    if not len(purchases.day):
        return np.where(typical > 0, 0.5, np.nan), np.where(typical > 0, 0.5, np.nan)  # (0 + 1) / (0 + 2)
    product = purchases.item_product[purchases.item]
    cycle = np.where(product >= 0, typical[np.maximum(product, 0)], np.nan)
    horizon = _REORDER_CYCLES * cycle
    same_pair = np.r_[pairs.day_pair[1:] == pairs.day_pair[:-1], False]
    next_gap = np.where(same_pair, np.r_[np.diff(purchases.day), 0], np.inf)
    counted = (now - purchases.day >= horizon) & (cycle > 0)  # False for NaN cycles
    followed = next_gap <= horizon
    is_first = np.r_[True, ~same_pair[:-1]]
    shares = []
    for stage in (is_first, ~is_first):
        chosen = counted & stage
        buys = np.bincount(product[chosen], minlength=n_products)
        again = np.bincount(product[chosen & followed], minlength=n_products)
        shares.append(np.where(typical > 0, (again + 1) / (buys + 2), np.nan))
    return shares[0], shares[1]


# ---------------------------------------------------------------------------
# The two rules, each giving rows as arrays.
# ---------------------------------------------------------------------------
class _Due(NamedTuple):
    customer: np.ndarray
    item: np.ndarray
    category: np.ndarray  # position in the lookup's categories
    due: np.ndarray  # days since 1970-01-01, fractional
    low: np.ndarray
    high: np.ndarray
    probability: np.ndarray
    reason: np.ndarray  # object array of str
    kind: np.ndarray  # position in KINDS
    quantity: np.ndarray


def _build_replenishment(
    pairs: _Pairs, purchases: _PurchaseDays, cycles: ProductCycles, window: _Window, config: DueConfig
) -> _Due:
    lookup = cycles.lookup
    product = purchases.item_product[pairs.item]
    prior = _per_product(cycles.typical_cycle_days, product, np.nan)
    n = pairs.n_gaps.astype(np.float64)
    cycle = shrink_cycle(pairs.own_cycle, n, prior, config.prior_strength)
    due = pairs.last_day + cycle
    # Repeatable (a consumable, or bought on two days or more) and not lapsed.
    repeatable = ((_per_product(lookup.product_replenishment_days, product, np.nan) > 0) | (n >= 1)) & (cycle > 0)
    rows = np.flatnonzero(repeatable)
    rows = rows[window.now - due[rows] <= config.max_overdue_cycles * cycle[rows]]

    # The next gap is log-normal around the cycle: the customer's irregularity plus the cycle's uncertainty.
    product, prior, n, cycle, due = product[rows], prior[rows], n[rows], cycle[rows], due[rows]
    k = np.where(prior > 0, config.prior_strength, 0.0)
    dof = np.maximum(n - 1, 0)
    k_sd = config.spread_prior_strength
    product_sd = _per_product(cycles.gap_log_sd, product, config.gap_log_sd)
    irregularity = (dof * np.nan_to_num(pairs.own_log_sd[rows]) ** 2 + k_sd * product_sd**2) / (dof + k_sd)
    with np.errstate(divide="ignore", invalid="ignore"):  # each branch divides by zero only where unused
        uncertainty = np.where(prior > 0, config.cycle_log_sd**2 * k / (n + k), irregularity / n)
    sd = np.sqrt(irregularity + uncertainty)
    last_day = pairs.last_day[rows]
    low = last_day + cycle * np.exp(-config.z * sd)

    # Only what reaches into the query window (overdue rows included: their interval starts before it).
    shown = np.flatnonzero(np.floor(low) < window.until)
    rows, product, prior, n, cycle, due, sd, last_day, low = (
        a[shown] for a in (rows, product, prior, n, cycle, due, sd, last_day, low)
    )
    elapsed = window.now - last_day
    reorder = np.where(
        n >= 1, cycles.reorder_share[np.maximum(product, 0)], cycles.first_reorder_share[np.maximum(product, 0)]
    )
    log_cycle = np.log(cycle)
    probability = _probability_in_window(
        _log_survival_lognormal(elapsed, log_cycle, sd),
        _log_survival_lognormal(elapsed + window.days, log_cycle, sd),
        np.nan_to_num(np.where(product >= 0, reorder, np.nan), nan=1.0),
    )
    return _Due(
        customer=pairs.customer[rows],
        item=pairs.item[rows],
        category=_per_product(lookup.product_category_codes, product, lookup.unknown_category_code).astype(np.int64),
        due=due,
        low=low,
        high=last_day + cycle * np.exp(config.z * sd),
        probability=probability,
        reason=_replenishment_reasons(pairs.own_cycle[rows], prior, cycle, n, np.floor(elapsed), due < window.now),
        kind=np.zeros(len(rows), dtype=np.int64),
        quantity=pairs.quantity[rows],
    )


def _per_product(values: np.ndarray, product: np.ndarray, missing: float) -> np.ndarray:
    """values[product], `missing` where the product is not in the lookup (-1)."""
    return np.where(product >= 0, values[np.maximum(product, 0)], missing)


# The customer's own cycle is quoted alone while the cycle used is within this factor of it.
_OWN_CYCLE_TOLERANCE = 1.25


def _replenishment_reasons(
    own_cycle: np.ndarray,
    prior: np.ndarray,
    cycle: np.ndarray,
    n: np.ndarray,
    elapsed: np.ndarray,
    overdue: np.ndarray,
) -> np.ndarray:
    """'bought every 28 days, last 26 days ago'; the product's usual cycle too where it moved the due date."""
    reasons = []
    for own, usual, used, gaps, ago, late in zip(
        own_cycle.tolist(), prior.tolist(), cycle.tolist(), n.tolist(), elapsed.tolist(), overdue.tolist(), strict=True
    ):
        if gaps < 1:
            text = f"usually restocked every {_days(usual)} (never repeated yet)"
        elif used <= own * _OWN_CYCLE_TOLERANCE and own <= used * _OWN_CYCLE_TOLERANCE:
            text = f"bought every {_days(own)}"
        elif gaps == 1:
            text = f"bought twice, {_days(own)} apart (usually every {_days(usual)})"
        else:
            text = f"bought {gaps + 1:.0f} times, every {_days(own)} (usually every {_days(usual)})"
        reasons.append(f"{'overdue: ' if late else ''}{text}, last {_days(ago)} ago")
    return np.asarray(reasons, dtype=object)


def _build_seasonal(
    purchases: _PurchaseDays, pairs: _Pairs, lookup: ProductLookup, window: _Window, config: DueConfig
) -> _Due:
    now = window.now
    n_categories = len(lookup.categories)
    unknown = lookup.unknown_category_code
    item_category = np.where(
        purchases.item_product >= 0, lookup.product_category_codes[np.maximum(purchases.item_product, 0)], unknown
    )
    half_width = config.seasonal_window_days
    slot_days = DAYS_PER_YEAR / SEASON_SLOTS
    # a (customer, category) qualifies only if its purchases span at least this many days
    min_span = (config.min_seasonal_years - 1) * DAYS_PER_YEAR - 2 * half_width
    if not len(pairs.first_day) or pairs.last_day.max() - pairs.first_day.min() < min_span:
        return _empty_due()  # nobody's purchases span enough years (one customer's often do not)

    # (customer, category) pairs, from the product pairs: only those spanning enough years can qualify.
    pair_category = item_category[pairs.item]
    pair_known = pair_category != unknown
    groups, group_of_pair = np.unique((pairs.customer * n_categories + pair_category)[pair_known], return_inverse=True)
    first = np.full(len(groups), np.iinfo(np.int64).max)
    last = np.full(len(groups), np.iinfo(np.int64).min)
    np.minimum.at(first, group_of_pair, pairs.first_day[pair_known])
    np.maximum.at(last, group_of_pair, pairs.last_day[pair_known])
    group_days = np.bincount(group_of_pair, weights=pairs.n_gaps[pair_known] + 1.0, minlength=len(groups))
    long_enough = last - first >= min_span
    group_of_day = np.full(len(pairs.customer), -1, dtype=np.int64)
    group_of_day[pair_known] = group_of_pair
    group_of_day = group_of_day[pairs.day_pair]
    rows = np.flatnonzero(group_of_day >= 0)
    rows = rows[long_enough[group_of_day[rows]]]
    if not len(rows):
        return _empty_due()

    # Each purchase day in every window (one or two, by default) whose centre is within half_width days of it.
    reach = int(np.ceil(half_width / slot_days))
    nearby = np.arange(-reach, reach + 1)
    nearest = np.rint(purchases.day[rows] / slot_days).astype(np.int64)
    rows = np.repeat(rows, len(nearby))
    slot = np.repeat(nearest, len(nearby)) + np.tile(nearby, len(nearest))
    offset = purchases.day[rows] - slot * slot_days
    inside = np.abs(offset) <= half_width
    rows, slot, offset = rows[inside], slot[inside], offset[inside]
    season = group_of_day[rows] * SEASON_SLOTS + slot % SEASON_SLOTS  # (customer, category, window)
    year = slot // SEASON_SLOTS
    order = _sort_order(season, year)
    rows, season, year, offset = rows[order], season[order], year[order], offset[order]

    # Per (season, year), then per season.
    year_starts = _run_starts(season, year)
    year_rows = np.diff(np.r_[year_starts, len(rows)])
    year_season, year_index = season[year_starts], year[year_starts]
    year_quantity = np.add.reduceat(purchases.quantity[rows], year_starts)
    year_offset = np.add.reduceat(offset, year_starts) / year_rows
    season_starts = _run_starts(year_season)
    n_seasons = len(season_starts)
    season_of_year = np.repeat(np.arange(n_seasons), np.diff(np.r_[season_starts, len(year_season)]))
    season_of_row = np.repeat(season_of_year, year_rows)
    season_group = year_season[season_starts] // SEASON_SLOTS
    years = np.bincount(season_of_year, minlength=n_seasons)
    in_window = np.bincount(season_of_row, minlength=n_seasons)
    centre_distance = np.bincount(season_of_row, weights=np.abs(offset), minlength=n_seasons) / in_window
    centre = (year_season[season_starts] % SEASON_SLOTS) * slot_days

    # Seasons seen: the windows that ended after the customer's first purchase and before as_of
    # (and any the customer bought in, the current one included).
    customer = groups[season_group] // n_categories
    first_purchase = _first_day_per_customer(pairs)[customer]
    first_seen = np.ceil((first_purchase - half_width - centre) / DAYS_PER_YEAR)
    last_ended = np.ceil((now - half_width - centre) / DAYS_PER_YEAR) - 1
    observed = np.maximum(last_ended - first_seen + 1, years)
    chance = _chance_of_coincidence(
        years, observed, group_days[season_group] - in_window, (now - first_purchase) / DAYS_PER_YEAR, config
    )

    # The best qualifying window of each (customer, category).
    candidates = np.flatnonzero((years >= config.min_seasonal_years) & (chance <= config.max_seasonal_chance))
    candidates = candidates[
        np.lexsort((centre_distance[candidates], -in_window[candidates], -years[candidates], season_group[candidates]))
    ]
    best = candidates[_run_starts(season_group[candidates])]
    if not len(best):
        return _empty_due()
    n_years, observed, customer, centre = years[best], observed[best], customer[best], centre[best]

    # When: the median day in the window, in the next season not over and not yet bought in.
    phase = centre + median_by_group(season_of_row, offset, n_seasons)[best]
    year_mean = np.bincount(season_of_year, weights=year_offset, minlength=n_seasons) / years
    squares = np.bincount(season_of_year, weights=(year_offset - year_mean[season_of_year]) ** 2, minlength=n_seasons)
    uniform_sd = half_width / np.sqrt(3)  # a day anywhere in the window
    k_sd = config.spread_prior_strength
    sd = np.sqrt((squares[best] + k_sd * uniform_sd**2) / (n_years - 1 + k_sd))
    half = np.maximum(config.z * sd, config.seasonal_min_half_width_days)
    sd = half / config.z
    latest_year = year_index[np.r_[season_starts[1:], len(year_season)] - 1][best]
    next_year = np.ceil((now - half - phase) / DAYS_PER_YEAR).astype(np.int64)
    next_year = np.where(latest_year >= next_year, latest_year + 1, next_year)
    due = next_year * DAYS_PER_YEAR + phase

    # Only what reaches into the query window.
    shown = np.flatnonzero(np.floor(due - half) < window.until)
    best, n_years, observed, customer, due, half, sd = (
        a[shown] for a in (best, n_years, observed, customer, due, half, sd)
    )

    # How likely: the share of seasons seen in which the customer bought, Laplace-smoothed.
    repeat = (n_years + 1) / (observed + 2)
    probability = _probability_in_window(
        special.log_ndtr((due - now) / sd), special.log_ndtr((due - now - window.days) / sd), repeat
    )

    category = groups[season_group[best]] % n_categories
    chosen = np.full(n_seasons, -1, dtype=np.int64)
    chosen[best] = np.arange(len(best))
    reasons = _seasonal_reasons(
        np.minimum.reduceat(year_quantity, season_starts)[best],
        np.maximum.reduceat(year_quantity, season_starts)[best],
        np.asarray(lookup.categories, dtype=object)[category],
        due,
        n_years,
        observed,
        due < now,
    )
    return _Due(
        customer=customer,
        item=_top_items(purchases, rows, chosen[season_of_row], len(best)),
        category=category,
        due=due,
        low=due - half,
        high=due + half,
        probability=probability,
        reason=reasons,
        kind=np.ones(len(best), dtype=np.int64),
        quantity=median_by_group(season_of_year, year_quantity, n_seasons)[best],
    )


def _chance_of_coincidence(
    years: np.ndarray, observed: np.ndarray, outside: np.ndarray, history_years: np.ndarray, config: DueConfig
) -> np.ndarray:
    """P(at least `years` of `observed` seasons hold a purchase), if the customer bought the category
    in the window only as often as outside it: purchase days at their outside rate (half a day added,
    so that "never outside" is not "impossible by chance"), spread evenly over the year."""
    window_share = 2 * config.seasonal_window_days / DAYS_PER_YEAR
    rate = (outside + 0.5) / np.maximum(history_years * (1 - window_share), 1 - window_share)
    hit = -np.expm1(-rate * window_share)
    return special.bdtrc(years - 1, observed.astype(np.int64), hit)


def _top_items(purchases: _PurchaseDays, rows: np.ndarray, target: np.ndarray, n_targets: int) -> np.ndarray:
    """Per target (-1: none), the item of `rows` with the most units; ties: the latest bought, then the first id."""
    selected = target >= 0
    rows, target = rows[selected], target[selected]
    item, day, quantity = purchases.item[rows], purchases.day[rows], purchases.quantity[rows]
    order = _sort_order(target, item)
    rows, target, item, day, quantity = rows[order], target[order], item[order], day[order], quantity[order]
    starts = _run_starts(target, item)
    units = np.add.reduceat(quantity, starts)
    latest = np.maximum.reduceat(day, starts)
    item, target = item[starts], target[starts]
    product = purchases.item_product[item]  # seasonal rows are in a known category, so in the catalogue
    ranked = np.lexsort((product, -latest, -units, target))
    first = ranked[_run_starts(target[ranked])]
    out = np.full(n_targets, -1, dtype=np.int64)
    out[target[first]] = item[first]
    return out


def _seasonal_reasons(
    fewest: np.ndarray,
    most: np.ndarray,
    category: np.ndarray,
    due: np.ndarray,
    years: np.ndarray,
    observed: np.ndarray,
    due_now: np.ndarray,
) -> np.ndarray:
    """'bought 5 shirts each January for 2 years', 'bought 1-3 toys each December in 2 of the last 3 years';
    'due now: ' first when the season has begun and the customer has not bought yet."""
    months = (np.floor(due).astype(np.int64).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12) + 1
    reasons = []
    for low, high, name, month, hit, seen, now in zip(
        fewest.tolist(),
        most.tolist(),
        category.tolist(),
        months.tolist(),
        years.tolist(),
        observed.tolist(),
        due_now.tolist(),
        strict=True,
    ):
        units = f"{low:g}" if low == high else f"{low:g}-{high:g}"
        when = f"for {hit} years" if hit == seen else f"in {hit} of the last {seen:.0f} years"
        label = str(name).replace("_", " ")
        reasons.append(f"{'due now: ' if now else ''}bought {units} {label} each {calendar.month_name[month]} {when}")
    return np.asarray(reasons, dtype=object)


# ---------------------------------------------------------------------------
# The output frame.
# ---------------------------------------------------------------------------
def _output_order(due: _Due, purchases: _PurchaseDays) -> tuple[np.ndarray, ...]:
    """(the rows' output order: customer, due day, kind, product id; their due, low and high days,
    rounded to whole days)."""
    day = np.rint(due.due).astype(np.int64)
    low = np.floor(due.low).astype(np.int64)
    high = np.ceil(due.high).astype(np.int64)
    if len(due.item) < 2:  # nothing to order (and no ids to sort)
        return np.arange(len(due.item)), day, low, high
    item_rank = np.empty(len(purchases.item_ids), dtype=np.int64)
    item_rank[purchases.item_ids.argsort()] = np.arange(len(purchases.item_ids))
    order = np.lexsort((item_rank[due.item], due.kind, day, due.customer))
    return order, day[order], low[order], high[order]


def _to_frame(due: _Due, purchases: _PurchaseDays, category_labels: pd.api.extensions.ExtensionArray) -> pd.DataFrame:
    order, day, low, high = _output_order(due, purchases)
    return pd.DataFrame(
        {
            s.CUSTOMER_ID: purchases.customer_ids.take(due.customer[order]),
            s.PRODUCT_ID: purchases.item_ids.take(due.item[order]),
            s.CATEGORY: category_labels.take(due.category[order]),
            s.DUE_DATE: _midnights(day),
            s.DUE_LOW: _midnights(low),
            s.DUE_HIGH: _midnights(high),
            s.DUE_PROBABILITY: due.probability[order],
            s.DUE_REASON: pd.array(due.reason[order], dtype="str"),
            s.DUE_KIND: _KIND_LABELS.take(due.kind[order]),
            s.EXPECTED_QUANTITY: due.quantity[order].astype(np.float64),
        },
        columns=list(OUTPUT_COLUMNS),
    )


def _empty_due() -> _Due:
    ints, floats = np.zeros(0, dtype=np.int64), np.zeros(0)
    return _Due(ints, ints, ints, floats, floats, floats, floats, np.zeros(0, dtype=object), ints, floats)


def _midnights(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[ns]")


# ---------------------------------------------------------------------------
# Small helpers.
# ---------------------------------------------------------------------------
def _check_as_of(as_of) -> pd.Timestamp:
    as_of = pd.Timestamp(as_of)
    if as_of is pd.NaT:
        raise ValueError("as_of must be a date, got NaT")
    if as_of.tzinfo is not None:
        raise ValueError(f"as_of must be timezone-naive (timestamps are read as UTC), got {as_of}")
    return as_of


@lru_cache(maxsize=4096)  # a few hundred distinct values among a million reasons
def _days(days: float) -> str:
    """'1 day', '28 days'."""
    text = f"{days:.0f}"
    return f"{text} day" if text == "1" else f"{text} days"


def _sort_order(*columns: np.ndarray) -> np.ndarray:
    """The stable order sorting by the integer columns, first column first."""
    if not len(columns[0]):
        return np.zeros(0, dtype=np.int64)
    lows = [int(column.min()) for column in columns]
    spans = [int(column.max()) - low + 1 for column, low in zip(columns, lows, strict=True)]
    if np.prod(np.asarray(spans, dtype=float)) >= 2.0**62:  # one packed key would overflow
        return np.lexsort(columns[::-1])
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column, low, span in zip(columns, lows, spans, strict=True):
        key = key * span + (column - low)
    return np.argsort(key, kind="stable")


def _run_starts(*columns: np.ndarray) -> np.ndarray:
    """Positions where a run of equal consecutive rows (over all columns) starts."""
    n = len(columns[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    changed = np.zeros(n - 1, dtype=bool)
    for column in columns:
        changed |= column[1:] != column[:-1]
    return np.flatnonzero(np.r_[True, changed])


def _first_day_per_customer(pairs: _Pairs) -> np.ndarray:
    """Each customer code's first purchase day (pairs come sorted by customer; codes are 0..n-1)."""
    return np.minimum.reduceat(pairs.first_day, _run_starts(pairs.customer))


def _log_survival_lognormal(days: np.ndarray, log_median: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """log P(G > days) for a log-normal G with the given median and log-scale sd."""
    return special.log_ndtr((log_median - np.log(np.maximum(days, 1e-9))) / sd)


def _probability_in_window(log_survival_start: np.ndarray, log_survival_end: np.ndarray, repeat) -> np.ndarray:
    """P(the purchase falls in [start, end) | none before start), when it happens at all with chance `repeat`.

    repeat * (S(start) - S(end)) / (1 - repeat + repeat * S(start)), computed in logs so that a
    long-overdue purchase (S(start) tiny) keeps its conditional chance.
    """
    in_window = 0.0 - np.expm1(np.minimum(log_survival_end - log_survival_start, 0.0))  # 0.0 - : never -0.0
    repeat = np.asarray(repeat, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        still_coming = 1.0 / (1.0 + (1.0 - repeat) / repeat * np.exp(-log_survival_start))
    return in_window * np.where(repeat >= 1.0, 1.0, np.nan_to_num(still_coming))
