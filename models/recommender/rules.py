"""The query-time business rules: one typed, validated object, and its form as catalogue codes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.recommender.catalogue import Catalogue


class RecommendationRules(BaseModel):
    """What a list may hold, applied at query time to the ranker's order.

    The defaults leave out what the customer bought before except consumables that are due ("time
    to restock"), and limit neither categories nor products. Category names are checked against the
    catalogue when the rules are applied (unknown names raise ValueError).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    exclude_purchased: bool = Field(
        True, description="Leave out products the customer bought before (restocks excepted, see include_restock)."
    )
    include_restock: bool = Field(
        True,
        description="With exclude_purchased, still offer consumables whose replenishment cycle is at least half over.",
    )
    include_categories: tuple[str, ...] | None = Field(
        None, description="Only products of these categories (unknown names are an error; empty: no limit)."
    )
    exclude_categories: tuple[str, ...] | None = Field(
        None, description="Never products of these categories (unknown names are an error; empty: none)."
    )
    exclude_product_ids: tuple[str, ...] | None = Field(
        None, description="Never these products (the service refuses unknown ids; empty: none)."
    )
    max_per_category: int | None = Field(
        None, ge=1, description="At most this many products of one category per list (diversity)."
    )

    @field_validator("include_categories", "exclude_categories", "exclude_product_ids", mode="after")
    @classmethod
    def _empty_restricts_nothing(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        # an empty list from a form or a JSON client means "no restriction", not "nothing allowed"
        return value or None


RULE_NAMES = tuple(RecommendationRules.model_fields)


def make_rules(rules: RecommendationRules | None, rule_values: Mapping[str, object]) -> RecommendationRules:
    """The rules of a call that takes either a `RecommendationRules` or its fields by keyword.

    Unknown keywords raise TypeError (as an unknown keyword argument would); giving both, or values
    the rules refuse (e.g. `max_per_category=0`), raise a one-line ValueError naming the field.
    """
    unknown = [name for name in rule_values if name not in RULE_NAMES]
    if unknown:
        raise TypeError(f"unknown rule {', '.join(map(repr, unknown))}; the rules are {', '.join(RULE_NAMES)}")
    if rules is not None:
        if rule_values:
            raise ValueError(f"give either rules or rule keywords, not both (got rules and {', '.join(rule_values)})")
        if not isinstance(rules, RecommendationRules):
            raise TypeError(f"rules must be a RecommendationRules, got {type(rules).__name__}")
        return rules
    try:
        return RecommendationRules(**rule_values)
    except ValidationError as error:
        raise ValueError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    """pydantic's errors on one line, each naming the field and value: the caller sees which keyword to fix."""
    problems = [
        f"{'.'.join(map(str, problem['loc']))}={problem['input']!r}: {problem['msg'][:1].lower()}{problem['msg'][1:]}"
        for problem in error.errors()
    ]
    return f"invalid rule {'; '.join(problems)}"


@dataclass(frozen=True)
class Rules:
    """The rules resolved against one catalogue (category and product codes)."""

    exclude_purchased: bool = True
    include_restock: bool = True
    include_categories: np.ndarray | None = None
    exclude_categories: np.ndarray | None = None
    exclude_items: np.ndarray | None = None
    max_per_category: int | None = None

    @property
    def restricts_items(self) -> bool:
        return any(x is not None for x in (self.include_categories, self.exclude_categories, self.exclude_items))

    def allowed_items(self, catalogue: Catalogue) -> np.ndarray:
        """Bool per product code: may this product be shown at all?"""
        allowed = np.ones(catalogue.size, dtype=bool)
        if self.include_categories is not None:
            allowed &= np.isin(catalogue.category, self.include_categories)
        if self.exclude_categories is not None:
            allowed &= ~np.isin(catalogue.category, self.exclude_categories)
        if self.exclude_items is not None:
            allowed[self.exclude_items] = False
        return allowed


def resolve_rules(rules: RecommendationRules, catalogue: Catalogue) -> Rules:
    """The rules as codes of `catalogue`: unknown category names raise ValueError, unknown product ids drop out."""
    excluded = None
    if rules.exclude_product_ids is not None:
        excluded = catalogue.index.get_indexer(list(rules.exclude_product_ids))
        excluded = excluded[excluded >= 0]
    return Rules(
        exclude_purchased=rules.exclude_purchased,
        include_restock=rules.include_restock,
        include_categories=catalogue.category_codes(rules.include_categories),
        exclude_categories=catalogue.category_codes(rules.exclude_categories),
        exclude_items=excluded,
        max_per_category=rules.max_per_category,
    )
