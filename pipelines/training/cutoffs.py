"""A model's training cutoffs as the command plans them, from the first purchase on.

The history of a training cutoff starts at the first purchase, not the first event: a cutoff with
no purchase before it has nothing to learn from, so it is skipped with a one-line note. When too
few cutoffs are left, the run stops with one line that says how many days are needed, how many
there are, and which single setting would fit (each checked by planning with it).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace

import pandas as pd

from features.history import first_purchase
from features.labels import DAY, CutoffPlan, ShortHistoryError, history_days_needed, plan_cutoffs
from pipelines.errors import UserError


@dataclass(frozen=True)
class CutoffRequest:
    """How one model asks for its cutoffs, and the settings a user would change to make them fit."""

    model: str
    horizon_days: int
    n_cutoffs: int
    step_days: int | None  # None: a horizon apart (each label window starts where the previous one ends)
    min_cutoffs: int
    horizon_key: str  # e.g. "churn.horizon_days"
    step_key: str | None = None  # None when the step is not a setting of its own
    alternatives: tuple[str, ...] = ()  # other ways out, e.g. another validation protocol

    @property
    def step(self) -> int:
        return self.horizon_days if self.step_days is None else self.step_days


def plan_training_cutoffs(
    request: CutoffRequest, transactions: pd.DataFrame, data_end: pd.Timestamp, evaluate_at: pd.Timestamp | None
) -> CutoffPlan:
    """The model's cutoffs before data_end (its test window at evaluate_at when given); cutoffs with
    no purchase before them are skipped with a note on stderr; UserError when too few are left."""
    first = first_purchase(transactions)
    if first is None:
        raise UserError(f"{request.model}: no purchase before {pd.Timestamp(data_end).date()} to learn from")
    try:
        plan = _plan(request, first, data_end, evaluate_at)
    except ShortHistoryError as error:
        fixes = [*settings_that_fit(request, first, data_end, evaluate_at), *request.alternatives]
        way_out = f"would fit: {' or '.join(fixes)}" if fixes else "more history is needed"
        raise UserError(f"{request.model}: {error}; {way_out}") from error
    except ValueError as error:
        raise UserError(f"{request.model}: {error}") from error
    if plan.skipped:
        print(skipped_note(request, plan, first), file=sys.stderr)
    return plan


def skipped_note(request: CutoffRequest, plan: CutoffPlan, first: pd.Timestamp) -> str:
    """One line: which asked-for cutoffs were dropped and why."""
    skipped = plan.skipped
    dates = f"{skipped[0].date()}" if len(skipped) == 1 else f"{skipped[0].date()} to {skipped[-1].date()}"
    return (
        f"note: {request.model}: skipped {len(skipped)} of {request.n_cutoffs} training cutoffs ({dates}): "
        f"no purchase before them (the first is on {first.date()}); training on the other {len(plan.train)}"
    )


def settings_that_fit(
    request: CutoffRequest, first: pd.Timestamp, data_end: pd.Timestamp, evaluate_at: pd.Timestamp | None
) -> list[str]:
    """Single changes that make the plan fit, as command-line options: the longest shorter horizon,
    the longest shorter cutoff step, the earliest later --evaluate-at. Fewer cutoffs never helps:
    the plan already keeps whichever fit."""
    fixes = []
    horizon = _first_that_fits(
        (replace(request, horizon_days=days) for days in range(request.horizon_days - 1, 0, -1)),
        first,
        data_end,
        evaluate_at,
    )
    if horizon is not None:
        fixes.append(f"--set {request.horizon_key}={horizon.horizon_days}")
    if request.step_key is not None:
        step = _first_that_fits(
            (replace(request, step_days=days) for days in range(request.step - 1, 0, -1)), first, data_end, evaluate_at
        )
        if step is not None:
            fixes.append(f"--set {request.step_key}={step.step_days}")
    if evaluate_at is not None:
        needed = history_days_needed(request.horizon_days, request.min_cutoffs, request.step)
        earliest = first.normalize() + (needed - request.horizon_days) * DAY
        if earliest > evaluate_at and _fits(request, first, data_end, earliest):
            fixes.append(f"--evaluate-at {earliest.date()}")
    return fixes


def _plan(
    request: CutoffRequest, first: pd.Timestamp, data_end: pd.Timestamp, evaluate_at: pd.Timestamp | None
) -> CutoffPlan:
    return plan_cutoffs(
        data_end,
        request.horizon_days,
        request.n_cutoffs,
        request.step,
        first_purchase=first,
        test_cutoff=evaluate_at,
        min_cutoffs=request.min_cutoffs,
    )


def _fits(
    request: CutoffRequest, first: pd.Timestamp, data_end: pd.Timestamp, evaluate_at: pd.Timestamp | None
) -> bool:
    try:
        _plan(request, first, data_end, evaluate_at)
    except ValueError:
        return False
    return True


def _first_that_fits(
    requests: Iterable[CutoffRequest], first: pd.Timestamp, data_end: pd.Timestamp, evaluate_at: pd.Timestamp | None
) -> CutoffRequest | None:
    return next((request for request in requests if _fits(request, first, data_end, evaluate_at)), None)
