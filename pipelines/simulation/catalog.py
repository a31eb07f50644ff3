"""The catalogue: products with categories, prices, brands, pack sizes, popularity and groups."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.simulation.config import BRAND_ENDINGS, BRAND_STEMS, SimulationConfig


@dataclass(frozen=True)
class Catalog:
    """Products as arrays indexed by product number, plus what is needed to sample them."""

    category: np.ndarray  # int, index into config.categories
    price: np.ndarray
    brand: np.ndarray  # int, index into brand_names, -1 when unknown
    brand_names: tuple[str, ...]
    replenishment_days: np.ndarray  # NaN for durable goods
    group: np.ndarray  # int, -1 when in no group
    group_offsets: np.ndarray  # members of group g: group_members[offsets[g]:offsets[g+1]]
    group_members: np.ndarray
    sampling_order: np.ndarray  # products sorted by category
    sampling_keys: np.ndarray  # category index + cumulative popularity within it, increasing
    durable_categories: np.ndarray  # category indexes
    replenishable_categories: np.ndarray

    @property
    def n_products(self) -> int:
        return len(self.category)

    @property
    def n_groups(self) -> int:
        return len(self.group_offsets) - 1

    def sample_products(self, rng: np.random.Generator, categories: np.ndarray) -> np.ndarray:
        """One product per requested category, by Zipf-like popularity within the category."""
        # Each category owns the key interval (c, c + 1]; the popularity CDF lives inside it.
        keys = categories + rng.random(len(categories))
        positions = np.searchsorted(self.sampling_keys, keys, side="left")
        return self.sampling_order[np.minimum(positions, len(self.sampling_order) - 1)]


def split_counts(total: int, shares: np.ndarray, minimum: int) -> np.ndarray:
    """Integer counts proportional to shares, each at least `minimum`, summing to `total`."""
    counts = np.maximum(minimum, np.floor(shares / shares.sum() * total).astype(np.int64))
    while counts.sum() < total:
        counts[np.argmax(shares / shares.sum() * total - counts)] += 1
    while counts.sum() > total:
        counts[np.argmax(counts)] -= 1
    return counts


def build_catalog(rng: np.random.Generator, n_products: int, config: SimulationConfig) -> Catalog:
    """Products with categories, prices, brands, pack sizes, popularity and groups."""
    categories = config.categories
    n_categories = len(categories)
    shares = np.array([c.catalogue_share for c in categories])
    counts = split_counts(n_products, shares, minimum=4)
    # Shuffle so a product's number says nothing about its category.
    category = rng.permutation(np.repeat(np.arange(n_categories), counts))

    median = np.array([c.price_median for c in categories])[category]
    sigma = np.array([c.price_sigma for c in categories])[category]
    price = np.maximum(0.99, np.round(median * np.exp(sigma * rng.standard_normal(n_products)), 2))

    brand_names = tuple(stem + ending for stem in BRAND_STEMS for ending in BRAND_ENDINGS)
    brand = rng.integers(0, len(brand_names), n_products)
    brand[rng.random(n_products) < config.brand_missing_share] = -1

    replenishment_days = np.full(n_products, np.nan)
    for index, spec in enumerate(categories):
        if spec.is_replenishable:
            members = np.flatnonzero(category == index)
            replenishment_days[members] = rng.choice(spec.replenishment_days, len(members))

    # Zipf popularity: a random rank within the category, weight 1 / rank^s.
    popularity = np.empty(n_products)
    for index in range(n_categories):
        members = np.flatnonzero(category == index)
        ranks = rng.permutation(len(members)) + 1
        popularity[members] = ranks.astype(np.float64) ** -config.zipf_exponent
    sampling_order = np.lexsort((np.arange(n_products), category))
    sorted_category = category[sampling_order]
    sorted_popularity = popularity[sampling_order]
    within = np.empty(n_products)
    for index in range(n_categories):
        span = sorted_category == index
        cumulative = np.cumsum(sorted_popularity[span])
        within[span] = cumulative / cumulative[-1]
    sampling_keys = sorted_category + within

    is_replenishable = np.array([c.is_replenishable for c in categories])
    group, group_offsets, group_members = build_groups(rng, category, is_replenishable, config)
    return Catalog(
        category=category,
        price=price,
        brand=brand,
        brand_names=brand_names,
        replenishment_days=replenishment_days,
        group=group,
        group_offsets=group_offsets,
        group_members=group_members,
        sampling_order=sampling_order,
        sampling_keys=sampling_keys,
        durable_categories=np.flatnonzero(~is_replenishable),
        replenishable_categories=np.flatnonzero(is_replenishable),
    )


def build_groups(
    rng: np.random.Generator,
    category: np.ndarray,
    is_replenishable: np.ndarray,
    config: SimulationConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bought-together groups of 2-4 durable products from the same category."""
    group = np.full(len(category), -1, dtype=np.int64)
    members_by_group: list[np.ndarray] = []
    for index in np.flatnonzero(~is_replenishable):
        candidates = rng.permutation(np.flatnonzero(category == index))
        budget = int(round(len(candidates) * config.grouped_product_share))
        position = 0
        while True:
            size = int(rng.choice(config.group_sizes))
            if position + size > budget:
                break
            members = np.sort(candidates[position : position + size])
            group[members] = len(members_by_group)
            members_by_group.append(members)
            position += size
    sizes = np.array([len(m) for m in members_by_group], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    members = np.concatenate(members_by_group).astype(np.int64) if members_by_group else np.empty(0, dtype=np.int64)
    return group, offsets, members
