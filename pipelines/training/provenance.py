"""Where a run came from: the data's fingerprint and date range, the git commit, the resolved config."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pandas as pd

from features.history import first_record, last_record


def data_fingerprint(tables: dict[str, pd.DataFrame]) -> dict[str, str]:
    """A content hash of the tables, their row counts and the date range: tags on every run."""
    digest = hashlib.sha256()
    tags = {}
    for name in sorted(tables):
        frame = tables[name]
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        tags[f"data.rows.{name}"] = str(len(frame))
    tags["data.hash"] = digest.hexdigest()[:16]
    tags["data.date_range"] = f"{first_record(tables).date()}..{last_record(tables).date()}"
    return tags


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """Nested config -> {"churn.horizon_days": "90", ...}; maps with free-form keys stay JSON."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and all(str(k).isidentifier() for k in value):
            flat |= flatten(value, name + ".")
        elif isinstance(value, dict):
            flat[name] = json.dumps(value, sort_keys=True)
        else:
            flat[name] = str(value)
    return flat
