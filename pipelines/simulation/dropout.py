"""Satisfaction at work: support tickets, NPS answers and the dropout day.

Satisfaction lowers the ticket rate, raises NPS scores and lowers the dropout hazard; a severe
ticket raises the hazard for weeks afterwards. Nothing is recorded after the dropout.
"""

from __future__ import annotations

import math

import numpy as np

from features import schema
from pipelines.simulation.config import SimulationConfig
from pipelines.simulation.events import NPS_RESPONSE, SUPPORT_TICKET, EventParts
from pipelines.simulation.profiles import Profiles
from pipelines.simulation.sampling import draw_poisson_process, sigmoid, unique_values
from pipelines.simulation.window import DAYS_PER_YEAR, Window


def simulate_support_and_dropout(
    rng: np.random.Generator,
    profiles: Profiles,
    window: Window,
    config: SimulationConfig,
    events: EventParts,
) -> np.ndarray:
    """Tickets, NPS answers and dropout days (inf when still active at the end).

    Tickets and NPS answers are drawn for the whole window, then cut at the dropout. The
    dropout hazard is constant within a week and scaled by (1 + boost), where the boost sums
    the severe tickets of *earlier* weeks, halving every few weeks; the dropout day is drawn
    exactly by inverting the cumulative hazard, vectorised over a (customer, week) matrix.
    """
    n = profiles.n
    z = profiles.satisfaction
    n_weeks = math.ceil(window.n_days / 7)
    duration = window.n_days - profiles.active_from

    ticket_rate = config.ticket_rate * np.exp(-config.satisfaction_ticket_effect * z)
    ticket_customer, ticket_day = draw_poisson_process(rng, ticket_rate, profiles.active_from, duration)
    severe_probability = sigmoid(config.severity_logit_base - config.severity_satisfaction_effect * z)
    severity = 1 + rng.binomial(4, severe_probability[ticket_customer])
    answer_customer, answer_day = draw_poisson_process(rng, np.full(n, config.nps_rate), profiles.active_from, duration)

    daily_base_hazard = config.dropout_hazard / DAYS_PER_YEAR * np.exp(-config.satisfaction_hazard_effect * z)
    threshold = rng.exponential(1.0, n)  # dropout when the cumulative hazard reaches it
    # Without severe tickets the hazard is constant, so the dropout day has a closed form.
    dropout = profiles.active_from + threshold / daily_base_hazard
    dropout[dropout >= window.n_days] = np.inf

    severe = severity >= config.severe_ticket_severity
    complainers = unique_values(ticket_customer[severe])
    boost = np.zeros((complainers.size, n_weeks))
    if complainers.size:
        row_of = np.full(n, -1, dtype=np.int64)
        row_of[complainers] = np.arange(complainers.size)
        severe_counts = np.bincount(
            row_of[ticket_customer[severe]] * n_weeks + (ticket_day[severe] // 7).astype(np.int64),
            minlength=complainers.size * n_weeks,
        ).reshape(complainers.size, n_weeks)
        boost = severe_ticket_boost(severe_counts, config)
        dropout[complainers] = draw_boosted_dropout(
            profiles.active_from[complainers],
            daily_base_hazard[complainers],
            boost,
            threshold[complainers],
            window,
        )

    before_ticket = ticket_day < dropout[ticket_customer]
    events.add(
        ticket_customer[before_ticket],
        ticket_day[before_ticket],
        SUPPORT_TICKET,
        value=severity[before_ticket],
    )
    before_answer = answer_day < dropout[answer_customer]
    answer_customer, answer_day = answer_customer[before_answer], answer_day[before_answer]
    answer_boost = np.zeros(answer_customer.size)
    if complainers.size:
        answer_row = row_of[answer_customer]
        has_boost = answer_row >= 0
        answer_boost[has_boost] = boost[answer_row[has_boost], (answer_day[has_boost] // 7).astype(np.int64)]
    score = (
        config.nps_mean
        + config.nps_satisfaction_slope * z[answer_customer]
        - config.nps_boost_penalty * answer_boost
        + config.nps_noise_sd * rng.standard_normal(answer_customer.size)
    )
    events.add(
        answer_customer,
        answer_day,
        NPS_RESPONSE,
        value=np.clip(np.rint(score), schema.NPS_MIN, schema.NPS_MAX),
    )
    return dropout


def draw_boosted_dropout(
    active_from: np.ndarray,
    daily_base_hazard: np.ndarray,
    boost: np.ndarray,
    threshold: np.ndarray,
    window: Window,
) -> np.ndarray:
    """Dropout days under a hazard of base * (1 + boost[week]), inf when beyond the window.

    The hazard is constant within a week, so the cumulative hazard is piecewise linear and the
    day it reaches `threshold` (an Exp(1) draw) is found exactly.
    """
    n_weeks = boost.shape[1]
    week_start = 7.0 * np.arange(n_weeks)
    lower = np.maximum(week_start[None, :], active_from[:, None])
    upper = np.minimum(week_start + 7.0, float(window.n_days))[None, :]
    exposure = np.maximum(upper - lower, 0.0)
    daily_hazard = daily_base_hazard[:, None] * (1.0 + boost)
    cumulative = np.cumsum(daily_hazard * exposure, axis=1)
    crossed = cumulative >= threshold[:, None]
    dropout = np.full(len(active_from), np.inf)
    who = np.flatnonzero(crossed[:, -1])
    week = np.argmax(crossed[who], axis=1)
    hazard_before = cumulative[who, week] - daily_hazard[who, week] * exposure[who, week]
    dropout[who] = lower[who, week] + (threshold[who] - hazard_before) / daily_hazard[who, week]
    return dropout


def severe_ticket_boost(severe_counts: np.ndarray, config: SimulationConfig) -> np.ndarray:
    """Boost in each week from severe tickets in earlier weeks, halving every half-life."""
    decay = 0.5 ** (1.0 / config.severe_ticket_half_life_weeks)
    boost = np.zeros(severe_counts.shape)
    running = np.zeros(severe_counts.shape[0])
    for week in range(1, severe_counts.shape[1]):  # a loop over weeks, vectorised over customers
        running = running * decay + config.severe_ticket_hazard_jump * severe_counts[:, week - 1]
        boost[:, week] = running
    return boost
