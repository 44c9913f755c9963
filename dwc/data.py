"""A synthetic multi-scenario CTR data set, for trying dwc and for the experiments in docs/results.md.

Four scenarios of very unbalanced size (80 / 15 / 4 / 1 % of the rows by default) share most of
their structure: a user-item affinity (latent vectors), an interest match between the item and
the user's history, item popularity. On top, each scenario has its own interactions: the strength
and *sign* of the price effect and of category preferences differ by scenario, and every scenario
re-weights the user-item affinity through its own matrix. A single shared model is pulled towards
the big scenario; the small ones need scenario-specific weights.

Columns (all numpy arrays, one row per impression): user_id, item_id, category, price (float32,
B x 1), history (B x 10 item ids, padded with 0), history_len, domain (the scenario id), ctr (the 0/1
label, float32, B x 1). Deterministic for a given seed. `dwc data generate` writes it as .npz in the
layout of docs/data.md; the specs in experiments/ train on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

USERS, ITEMS, CATEGORIES, HISTORY = 2_000, 1_000, 20, 10
SHARES = (0.80, 0.15, 0.04, 0.01)


@dataclass(frozen=True)
class World:
    """The hidden parameters every split of one seed shares."""

    user_vec: np.ndarray
    item_vec: np.ndarray
    item_price: np.ndarray
    item_pop: np.ndarray
    user_history: np.ndarray
    scenario_matrix: np.ndarray
    price_effect: np.ndarray
    category_pref: np.ndarray
    scenario_bias: np.ndarray


def make_world(seed: int = 0, scenarios: int = len(SHARES)) -> World:
    rng = np.random.default_rng(seed)
    dim = 8
    return World(
        user_vec=rng.normal(0, 1, (USERS, dim)) / np.sqrt(dim),
        item_vec=rng.normal(0, 1, (ITEMS, dim)) / np.sqrt(dim),
        item_price=rng.lognormal(3.0, 0.8, ITEMS).astype(np.float32),
        item_pop=rng.normal(0, 0.5, ITEMS),
        user_history=rng.integers(1, ITEMS, (USERS, HISTORY)),
        scenario_matrix=rng.normal(0, 1.2, (scenarios, dim, dim)),
        # the price effect changes sign between scenarios (bargain vs premium surfaces)
        price_effect=np.linspace(-1.0, 1.0, scenarios) * 1.5,
        category_pref=rng.normal(0, 1.0, (scenarios, CATEGORIES)),
        scenario_bias=rng.normal(-1.0, 0.3, scenarios),
    )


def make_dataset(rows: int, seed: int = 0, split: int = 0,
                 shares: tuple[float, ...] = SHARES) -> dict[str, np.ndarray]:
    """`rows` impressions drawn from the world of `seed`; `split` picks independent samples
    (train 0, validation 1, test 2) of the same world."""
    world = make_world(seed, len(shares))
    rng = np.random.default_rng([seed, split, 7919])
    scenario = rng.choice(len(shares), size=rows, p=np.asarray(shares) / sum(shares))
    user = rng.integers(0, USERS, rows)
    item = rng.integers(1, ITEMS, rows)
    category = item % CATEGORIES
    lengths = rng.integers(1, HISTORY + 1, rows)
    history = world.user_history[user].copy()
    history[np.arange(HISTORY)[None, :] >= lengths[:, None]] = 0
    u, v = world.user_vec[user], world.item_vec[item]
    valid = (history > 0)[..., None]
    interest = (world.item_vec[history] * valid).sum(1) / lengths[:, None]
    log_price = np.log(world.item_price[item])
    logit = (
        2.0 * (u * v).sum(1)                                               # shared affinity
        + 1.5 * (interest * v).sum(1) * np.sqrt(8)                        # shared interest match
        + world.item_pop[item]                                             # shared popularity
        + 3.0 * np.einsum("bi,bij,bj->b", u, world.scenario_matrix[scenario], v)  # per scenario
        + world.price_effect[scenario] * (log_price - 3.0)                 # sign flips
        + world.category_pref[scenario, category]                         # per-scenario taste
        + world.scenario_bias[scenario]
    )
    label = rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))
    return {
        "user_id": user.astype(np.int64),
        "item_id": item.astype(np.int64),
        "category": category.astype(np.int64),
        "price": world.item_price[item][:, None].astype(np.float32),
        "history": history.astype(np.int64),
        "history_len": lengths.astype(np.int64),
        "domain": scenario.astype(np.int64),
        "ctr": label[:, None].astype(np.float32),
    }


def save(path: str, rows: int, seed: int = 0) -> None:
    """Write train / validation / test splits (80 / 10 / 10 %) into one .npz at exactly `path`
    (no suffix is added), replacing it atomically; DiagnosticError(DW402) if it cannot be
    written."""
    from dwc.driver import atomic_file

    sizes = {"train": int(rows * 0.8), "valid": int(rows * 0.1), "test": int(rows * 0.1)}
    arrays = {}
    for split, (name, n) in enumerate(sizes.items()):
        for key, value in make_dataset(n, seed, split).items():
            arrays[f"{name}/{key}"] = value
    with atomic_file(path) as handle:
        np.savez_compressed(handle, **arrays)


def load(path: str, split: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key.split("/", 1)[1]: data[key] for key in data.files
                if key.startswith(f"{split}/")}
