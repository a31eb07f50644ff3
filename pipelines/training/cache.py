"""Features and reference tables per cutoff, computed once and shared by every model of a run."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from features import schema as s
from features.reference import ReferenceTables
from pipelines.profiles import build_profiles, build_reference
from pipelines.settings import Settings


@dataclass(frozen=True)
class CutoffFeatures:
    """Every customer's feature row at one cutoff, and the reference tables they were built with."""

    features: pd.DataFrame
    reference: ReferenceTables


@dataclass
class FeatureCache:
    """Features by cutoff (the expensive part), so churn and propensity share it."""

    tables: dict[str, pd.DataFrame]
    settings: Settings
    cutoffs: dict[pd.Timestamp, CutoffFeatures] = field(default_factory=dict)

    @property
    def transactions(self) -> pd.DataFrame:
        return self.tables[s.TRANSACTIONS]

    def at(self, as_of: pd.Timestamp) -> CutoffFeatures:
        as_of = pd.Timestamp(as_of)
        if as_of not in self.cutoffs:
            reference = build_reference(self.tables, as_of, self.settings.propensity.top_categories)
            features = build_profiles(self.tables, as_of, self.settings.features, reference)
            self.cutoffs[as_of] = CutoffFeatures(features, reference)
        return self.cutoffs[as_of]
