"""The as_of a rebuilt profile gets after an event: the next whole second, like pandas would say."""

from __future__ import annotations

import numpy as np
import pandas as pd

from service.events import just_after


def test_just_after_is_the_floor_to_the_second_plus_one_second_in_any_unit_and_zone():
    rng = np.random.default_rng(3)
    moments = [pd.Timestamp(int(value)) for value in rng.integers(-(10**18), 2 * 10**18, 200)]
    moments += [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-01T00:00:00.999999999"), pd.Timestamp("1960-01-01")]
    moments += [moment.as_unit(unit) for moment in moments[:20] for unit in ("s", "ms", "us")]
    moments += [moment.tz_localize("UTC") for moment in moments[:20]]
    moments += [pd.Timestamp("2024-03-31T01:59:59.5", tz="Europe/Berlin")]
    for moment in moments:
        expected = moment.floor("s") + pd.Timedelta(seconds=1)
        got = just_after(moment)
        assert got == expected and got.unit == expected.unit and got.tz == expected.tz, moment
