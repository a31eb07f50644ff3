"""Small vectorised numpy helpers, most of them random draws.

Every draw takes its generator as an argument: there is no global random state.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from pipelines.simulation.config import SimulationConfig
from pipelines.simulation.window import DAYS_PER_YEAR


def ragged_arange(counts: np.ndarray) -> np.ndarray:
    """[0..c0-1, 0..c1-1, ...] for counts [c0, c1, ...]."""
    total = int(counts.sum())
    starts = np.cumsum(counts) - counts
    return np.arange(total, dtype=np.int64) - np.repeat(starts, counts)


def draw_rows_categorical(rng: np.random.Generator, cumulative: np.ndarray) -> np.ndarray:
    """One category per row of a row-wise cumulative probability matrix."""
    draws = rng.random(cumulative.shape[0])[:, None]
    chosen = (draws > cumulative).sum(axis=1)
    return np.minimum(chosen, cumulative.shape[1] - 1)


def draw_categorical(rng: np.random.Generator, weights: Iterable[float], size: int) -> np.ndarray:
    """`size` draws from one fixed set of weights."""
    weights = np.asarray(tuple(weights), dtype=np.float64)
    cumulative = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cumulative, rng.random(size), side="right"), len(weights) - 1)


def uniform_between(rng: np.random.Generator, bounds: tuple[float, float], size: int) -> np.ndarray:
    low, high = bounds
    return low + (high - low) * rng.random(size)


def unique_values(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique without its hashing detour, which is slow here)."""
    ordered = np.sort(values)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if ordered.size else ordered


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def draw_poisson_process(
    rng: np.random.Generator, rate_per_year: np.ndarray, start: np.ndarray, duration: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Times of independent Poisson processes, one per customer, on [start, start + duration)."""
    duration = np.maximum(duration, 0.0)
    counts = rng.poisson(rate_per_year * duration / DAYS_PER_YEAR)
    customer = np.repeat(np.arange(len(counts)), counts)
    day = start[customer] + rng.random(customer.size) * duration[customer]
    return customer, day


def draw_time_of_day(rng: np.random.Generator, day: np.ndarray, config: SimulationConfig) -> np.ndarray:
    """Keep the date, redraw the time from the hourly profile (people shop in the evening)."""
    hour = draw_categorical(rng, config.hour_weights, len(day))
    return np.floor(day) + (hour + rng.random(len(day))) / 24.0
