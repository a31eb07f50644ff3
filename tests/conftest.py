"""Shared fixtures: a small generated data set with its ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from features import schema
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
        for key, value in service_workspace.environment(store_path, SCORING_MAX_BATCH="100").items():
            patch.setenv(key, value)
        patch.delenv("SCORING_API_KEY", raising=False)
        with TestClient(CustomerIntelligence.to_asgi()) as test_client:
            yield test_client
