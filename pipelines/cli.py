"""The command-line options every pipeline command shares, written once.

`--data DIR` (the contract tables), `--as-of DATE` ("pretend today is DATE"), `--mlflow-store DIR`
(the local MLflow folder), `--profiles FILE` (the service's profile store), and `--config FILE` with
repeated `--set key=value`. The commands are `pipelines.<step>`; this module only parses.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import pandas as pd

from features.history import last_record
from models.names import MODEL_NAMES
from pipelines.errors import UserError

DEFAULT_MLFLOW_STORE = Path("mlruns")


def now_utc() -> pd.Timestamp:
    """The current time, naive UTC (the contract's timestamps are naive UTC)."""
    return pd.Timestamp.now("UTC").tz_localize(None)


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="folder with the contract tables")


def add_as_of_argument(parser: argparse.ArgumentParser, what: str = "pretend today is this date") -> None:
    parser.add_argument("--as-of", default=None, help=f"{what} (YYYY-MM-DD; default: the day after the last record)")


def add_mlflow_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mlflow-store",
        type=Path,
        default=DEFAULT_MLFLOW_STORE,
        help=f"local MLflow store folder (default: {DEFAULT_MLFLOW_STORE}; ignored when MLFLOW_TRACKING_URI is set)",
    )
    refuse_store_option(parser)


def refuse_store_option(parser: argparse.ArgumentParser) -> None:
    """`--store` meant the MLflow folder in some commands and the profile store in another: it is
    refused with a pointer to the two options that replaced it."""
    parser.add_argument("--store", action=_RemovedStoreOption, help=argparse.SUPPRESS)


def add_profiles_argument(parser: argparse.ArgumentParser, required_help: str | None = None) -> None:
    """`--profiles FILE`: the service's profile store (train and score also fill it when given)."""
    parser.add_argument(
        "--profiles",
        type=Path,
        default=None,
        help=required_help
        or "also fill this profile store for the scoring service (history and profiles at as_of), "
        "as pipelines.materialize does",
    )


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The --config and --set options every pipeline command shares."""
    parser.add_argument("--config", type=Path, default=None, help="YAML config file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set churn.horizon_days=182 (repeatable)",
    )


class _RemovedStoreOption(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        raise UserError(
            "--store is gone: use --mlflow-store DIR for the MLflow folder, --profiles FILE for the profile store"
        )


def parse_as_of(text: str | None, tables: dict[str, pd.DataFrame], option: str = "--as-of") -> pd.Timestamp:
    """The cutoff: the given date, or the day after the last record when none is given."""
    if text is None:
        return data_end(tables)
    try:
        return pd.Timestamp(date.fromisoformat(text))
    except (ValueError, TypeError) as error:
        raise UserError(f"{option} {text!r}: not a date (use YYYY-MM-DD)") from error


def data_end(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The day after the last transaction or event: the exclusive end of the history."""
    last = last_record(tables)
    if last is None:
        raise UserError("no transactions or events to build features from")
    return last.normalize() + pd.Timedelta(days=1)


def parse_models(text: str) -> list[str]:
    """`--models churn,propensity`: the named model families, in the order given, each once."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in MODEL_NAMES]
    if unknown or not names:
        raise UserError(
            f"--models {text!r}: unknown model(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(MODEL_NAMES)}"
        )
    return names


def train_command(names: list[str]) -> str:
    """The command that trains these model families, as a user would type it."""
    return f"`python -m pipelines.train --data DIR --models {','.join(names)}`"
