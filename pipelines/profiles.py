"""Customer profiles at an as_of: the reference tables, the sharded feature build, and the store.

The one place that builds reference tables (BG/NBD fitted once per cutoff, through
`models.bgnbd.fit_parameters`) and profiles for every command: training at each cutoff, batch
scoring, `pipelines.features` and the profile store the service reads (`materialize`).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from features import schema as s
from features.customer import FeatureWindows
from features.history import HISTORY_TABLES, History, tables_before
from features.parallel import build_customer_features_sharded
from features.reference import ReferenceTables, build_reference_tables
from models.bgnbd import fit_parameters
from models.due import build_product_cycles
from pipelines.errors import UserError
from pipelines.settings import FeatureSettings, Settings
from pipelines.store import SQLiteProfileStore
from pipelines.store.state import MaterializedState, write_materialized_state


def feature_windows(settings: FeatureSettings) -> FeatureWindows:
    return FeatureWindows(settings.windows_days, settings.behaviour_windows_days)


def build_reference(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, top_categories: int) -> ReferenceTables:
    """Reference tables at as_of, with the repeat-buying model fitted on every buyer before it."""
    return build_reference_tables(tables, as_of, top_categories, fit_repeat_buying=fit_parameters)


def build_profiles(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    settings: FeatureSettings,
    reference: ReferenceTables,
) -> pd.DataFrame:
    """Every customer's feature row at as_of (one per customer known before it), on `settings.n_jobs` cores."""
    return build_customer_features_sharded(
        History.from_tables(tables), as_of, reference, feature_windows(settings), n_jobs=settings.n_jobs
    )


def materialize(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, settings: Settings, store_path: Path) -> int:
    """Fill the profile store: the history before as_of, the profiles at as_of and the state they were
    built with (replacing what the store held). Returns the number of profiles."""
    tables = tables_before(tables, as_of)
    reference = build_reference(tables, as_of, settings.propensity.top_categories)
    profiles = build_profiles(tables, as_of, settings.features, reference)
    if profiles.empty:
        raise UserError(f"no customer is known before {as_of.date()}")
    past = History.from_tables(tables)
    state = MaterializedState(
        reference,
        feature_windows(settings.features),
        as_of,
        settings.churn.lookback_days,
        build_product_cycles(past.transactions, tables.get(s.PRODUCTS), as_of),
    )
    with SQLiteProfileStore(store_path) as store:
        store.clear_history()
        store.append_rows({name: getattr(past, name) for name in HISTORY_TABLES})
        store.put_profiles(profiles, as_of, replace=True)
        write_materialized_state(store, state)
    return len(profiles)


def fill_profile_store(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, settings: Settings, path: Path) -> None:
    """`materialize`, with a line saying what was written where."""
    started = time.perf_counter()
    count = materialize(tables, as_of, settings, path)
    print(f"{count:,} customer profiles at {as_of.date()} -> {path} ({time.perf_counter() - started:.1f} s)")
