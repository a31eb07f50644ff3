"""`python -m pipelines.features`: the profile table analysts use, and its errors."""

from __future__ import annotations

import pandas as pd

from features import schema as s
from features.segments import LIFECYCLE_STAGES, PROSPECT, RFM_SEGMENTS
from pipelines import features as features_command


def test_profile_table_has_one_row_per_known_customer_with_segments(generated_data, tmp_path):
    out = tmp_path / "profiles.csv"
    code = features_command.main(
        [
            "--data",
            str(generated_data.data_dir),
            "--as-of",
            "2025-06-01",
            "--out",
            str(out),
            "--set",
            "features.n_jobs=1",
        ]
    )
    assert code == 0
    profiles = pd.read_csv(out, dtype={s.CUSTOMER_ID: str})
    known = generated_data.customers[generated_data.customers[s.SIGNUP_DATE] < pd.Timestamp("2025-06-01")]
    assert set(profiles[s.CUSTOMER_ID]) == set(known[s.CUSTOMER_ID])
    assert profiles[s.CUSTOMER_ID].is_unique
    assert set(profiles[s.RFM_SEGMENT]) <= set(RFM_SEGMENTS) | {PROSPECT}
    assert set(profiles[s.LIFECYCLE_STAGE]) <= set(LIFECYCLE_STAGES)
    assert profiles[[s.RFM_R, s.RFM_F, s.RFM_M]].isin(range(6)).all().all()
    for column in (s.AGE_BAND, s.GENDER, s.REGION, s.FAVOURITE_CATEGORY):
        assert profiles[column].notna().all()


def test_a_bad_as_of_date_is_one_line_and_exit_2(generated_data, tmp_path, capsys):
    code = features_command.main(
        ["--data", str(generated_data.data_dir), "--as-of", "June", "--out", str(tmp_path / "x.parquet")]
    )
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert "--as-of" in error and len(error.splitlines()) == 1
