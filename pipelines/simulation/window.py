"""The simulated period and the simulation's time units.

Inside the simulation time is a float number of days from the window start; the tables hold
whole seconds, and `days_to_seconds` is the one place that converts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_START = "2023-01-01"
DEFAULT_END = "2025-12-31"

SECONDS_PER_DAY = 86_400
DAYS_PER_YEAR = 365.25
MINUTE = 1 / (24 * 60)  # in days, the simulation's time unit


@dataclass(frozen=True)
class Window:
    """The simulated period: from start (midnight) through the whole of the end day."""

    start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def from_dates(cls, start: str | pd.Timestamp, end: str | pd.Timestamp) -> Window:
        start_ts, end_ts = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        if start_ts.tzinfo is not None or end_ts.tzinfo is not None:
            raise ValueError("start and end must be timezone-naive dates")
        if end_ts <= start_ts:
            raise ValueError(f"end {end_ts.date()} must be after start {start_ts.date()}")
        return cls(start_ts, end_ts)

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def n_seconds(self) -> int:
        return self.n_days * SECONDS_PER_DAY

    @property
    def start_microseconds(self) -> int:
        return int(np.datetime64(self.start.to_datetime64(), "us").astype(np.int64))

    @property
    def start_day_of_year(self) -> int:
        return self.start.dayofyear - 1

    def month_starts(self) -> tuple[np.ndarray, np.ndarray]:
        """Start offset (days from start) and length of every month of every touched year.

        Both arrays have shape (n_years, 12); offsets can fall outside the window.
        """
        years = np.arange(self.start.year, self.end.year + 1)
        firsts = pd.to_datetime([f"{year}-{month:02d}-01" for year in years for month in range(1, 13)])
        offsets = ((firsts - self.start).days.to_numpy()).reshape(len(years), 12)
        lengths = firsts.days_in_month.to_numpy().reshape(len(years), 12)
        return offsets.astype(np.float64), lengths.astype(np.float64)


def days_to_seconds(days: np.ndarray) -> np.ndarray:
    """Simulation days (floats from window start) to whole seconds from window start."""
    return np.floor(np.asarray(days) * SECONDS_PER_DAY).astype(np.int64)
