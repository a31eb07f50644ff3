"""Behaviour events as integer-coded buffers; strings are made once, at assembly.

Each simulation step adds its events to one `EventParts`; the block concatenates them once and
clamps their times into each customer's active span.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from features import schema
from pipelines.simulation.profiles import Profiles
from pipelines.simulation.window import Window, days_to_seconds

# Event codes are positions in schema.EVENT_TYPES.
_EVENT_CODE = {event_type: code for code, event_type in enumerate(schema.EVENT_TYPES)}
SESSION_START = _EVENT_CODE[schema.EVENT_SESSION_START]
PRODUCT_VIEW = _EVENT_CODE[schema.EVENT_PRODUCT_VIEW]
ADD_TO_CART = _EVENT_CODE[schema.EVENT_ADD_TO_CART]
SEARCH = _EVENT_CODE[schema.EVENT_SEARCH]
EMAIL_OPEN = _EVENT_CODE[schema.EVENT_EMAIL_OPEN]
EMAIL_CLICK = _EVENT_CODE[schema.EVENT_EMAIL_CLICK]
SUPPORT_TICKET = _EVENT_CODE[schema.EVENT_SUPPORT_TICKET]
NPS_RESPONSE = _EVENT_CODE[schema.EVENT_NPS_RESPONSE]

NO_PRODUCT = -1


@dataclass
class EventParts:
    """Columns of behaviour events, collected in parts and concatenated once."""

    customer: list[np.ndarray] = field(default_factory=list)
    day: list[np.ndarray] = field(default_factory=list)
    event_type: list[np.ndarray] = field(default_factory=list)
    product: list[np.ndarray] = field(default_factory=list)
    value: list[np.ndarray] = field(default_factory=list)

    def add(
        self,
        customer: np.ndarray,
        day: np.ndarray,
        event_type: int,
        product: np.ndarray | None = None,
        value: np.ndarray | None = None,
    ) -> None:
        customer = np.asarray(customer, dtype=np.int64)
        size = len(customer)
        self.customer.append(customer)
        self.day.append(np.asarray(day, dtype=np.float64))
        self.event_type.append(np.broadcast_to(np.int8(event_type), (size,)).astype(np.int8))
        self.product.append(np.full(size, NO_PRODUCT, dtype=np.int64) if product is None else np.asarray(product))
        self.value.append(np.full(size, np.nan) if value is None else np.asarray(value, float))

    def concatenate(self) -> EventArrays:
        return EventArrays(
            customer=np.concatenate(self.customer),
            day=np.concatenate(self.day),
            event_type=np.concatenate(self.event_type),
            product=np.concatenate(self.product).astype(np.int64),
            value=np.concatenate(self.value),
        )


@dataclass(frozen=True)
class EventArrays:
    customer: np.ndarray  # local customer index
    day: np.ndarray
    event_type: np.ndarray  # index into schema.EVENT_TYPES
    product: np.ndarray  # NO_PRODUCT when the event is not about a product
    value: np.ndarray  # NaN unless NPS score or ticket severity


def clamp_event_seconds(
    events: EventArrays, profiles: Profiles, active_until: np.ndarray, window: Window
) -> np.ndarray:
    """Whole seconds, inside each customer's active span (emails after dropout: up to the end).

    Checkout sessions just after signup and views just before dropout can spill a few minutes
    over the edges; clamping keeps "signup <= first record" and "nothing but emails after dropout".
    """
    second = days_to_seconds(events.day)
    earliest = days_to_seconds(profiles.active_from)[events.customer]
    latest = days_to_seconds(active_until)[events.customer] - 1
    latest = np.where(events.event_type == EMAIL_OPEN, window.n_seconds - 1, latest)
    return np.clip(second, earliest, latest)
