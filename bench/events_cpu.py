"""In-process CPU of POST /events for one purchase, and where it goes.

`python -m bench.events_cpu [--profiles STORE] [--customers N] [--calls N] [--repeats N]`

Runs `EventWriter.write` (all that `Scorer.events` does; no model is needed, so a store alone will
do) on a private copy of a profile store (the given one, or one materialised from N generated
customers), one purchase of a random known customer per call, and reports wall and CPU ms per call
(p50 and p99, each with a 95% bootstrap interval over the calls) and the median CPU split: validate
(`check_rows`), history read (`store.histories`), features (`build_customer_features`), store write
(`append_rows` + `put_profiles`); the rest is the handler's own glue. CPU time (`time.process_time`)
is the number to compare: the machine is shared, and wall time includes other people's work.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

import service.events as events_module
from bench.serving import purchase_row, read_targets
from pipelines.store import SQLiteProfileStore
from pipelines.store.state import read_materialized_state
from service.events import EventWriter

SPLIT = {
    "validate": (events_module, "check_rows"),
    "history read": (SQLiteProfileStore, "histories"),
    "features": (events_module, "build_customer_features"),
    "store write": (SQLiteProfileStore, ("append_rows", "put_profiles")),
}


def materialised_workspace(root: Path, customers: int) -> Path:
    """A profile store materialised from `customers` generated customers (no models: /events needs none)."""
    from pipelines import simulation
    from pipelines.cli import data_end
    from pipelines.profiles import materialize
    from pipelines.settings import load_settings

    tables, _ = simulation.generate_tables(customers, 20_240_601)
    path = root / "profiles.sqlite"
    materialize(tables, data_end(tables), load_settings(overrides=["features.n_jobs=1"]), path)
    return path


@contextmanager
def timed_parts(totals: dict[str, list[float]]):
    """Wrap the split's functions so each call adds its CPU ms to `totals[part]` (restored after)."""
    saved = []
    for part, (owner, names) in SPLIT.items():
        for name in (names,) if isinstance(names, str) else names:
            original = getattr(owner, name)
            saved.append((owner, name, original))

            def wrapper(*args, _original=original, _part=part, **kwargs):
                start = time.process_time()
                try:
                    return _original(*args, **kwargs)
                finally:
                    totals[_part][-1] += (time.process_time() - start) * 1000

            setattr(owner, name, wrapper)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def measure(store_path: Path, calls: int, repeats: int, seed: int = 1) -> dict:
    ids, products, _ = read_targets(store_path)
    store = SQLiteProfileStore(store_path)
    state = read_materialized_state(store)
    writer = EventWriter(store, state, 1000, lambda: pd.Timestamp("2026-12-02"))
    rng = random.Random(seed)
    counter = iter(range(10**9))

    def one():
        row = purchase_row(f"bench{next(counter)}", rng.choice(ids), rng.choice(products), "2026-12-01T10:00:00")
        return writer.write({"transactions": [row]})

    for _ in range(20):
        one()
    walls, cpus = [], []
    totals: dict[str, list[float]] = defaultdict(list)
    with timed_parts(totals):
        for _ in range(repeats):
            for _ in range(calls):
                for part in SPLIT:
                    totals[part].append(0.0)
                wall, cpu = time.perf_counter(), time.process_time()
                one()
                cpus.append((time.process_time() - cpu) * 1000)
                walls.append((time.perf_counter() - wall) * 1000)
    store.close()
    walls_a, cpus_a = np.array(walls), np.array(cpus)
    return {
        "calls": len(walls),
        "p50": percentile_interval(walls_a, 50),
        "p99": percentile_interval(walls_a, 99),
        "cpu_p50": percentile_interval(cpus_a, 50),
        "cpu_p99": percentile_interval(cpus_a, 99),
        "split_p50": {part: float(np.median(values)) for part, values in totals.items()},
    }


def percentile_interval(values: np.ndarray, q: float, draws: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(the q-th percentile, and its 95% bootstrap interval over the calls)."""
    rng = np.random.default_rng(seed)
    resampled = np.percentile(rng.choice(values, size=(draws, len(values))), q, axis=1)
    low, high = np.percentile(resampled, [2.5, 97.5])
    return float(np.percentile(values, q)), float(low), float(high)


def _shown(estimate: tuple[float, float, float]) -> str:
    return f"{estimate[0]:.2f} [{estimate[1]:.2f}, {estimate[2]:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=Path, default=None, help="profile store to copy (default: generate)")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if args.profiles is None:
            source = materialised_workspace(work / "generated", args.customers)
            label = f"{args.customers} generated customers"
        else:
            source, label = args.profiles, str(args.profiles)
        copy = work / "events.sqlite"
        shutil.copy(source, copy)
        result = measure(copy, args.calls, args.repeats)
    split = ", ".join(f"{part} {ms:.2f}" for part, ms in result["split_p50"].items())
    print(
        f"{label}: {result['calls']} calls; wall ms p50 {_shown(result['p50'])}, p99 {_shown(result['p99'])}; "
        f"CPU ms p50 {_shown(result['cpu_p50'])}, p99 {_shown(result['cpu_p99'])}; CPU split p50 (ms): {split}"
    )


if __name__ == "__main__":
    main()
