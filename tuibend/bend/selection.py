"""Which units a bend acts on: an order over the layer's units, and weights from a proportion.

A bend with proportion p over U units gives full weight to the first ``floor(p*U)`` units of
its order and the fractional remainder to the next, so raising p only adds units (nested)
and a fader sweep fades units in one by one. The order is seeded (``random``) or informed by
statistics of the model's activations (variance, correlation with loudness, pitch or spectral
centroid, k-means clusters of the units' activation profiles), computed once per model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuibend.errors import TuibendError

CLUSTER_COUNTS = (4, 8)  # the k-means partitions a model's unit statistics hold

METHODS = ("random", "variance", "correlation", "cluster")
FEATURES = ("loudness", "pitch", "centroid")


class SelectionError(TuibendError, ValueError):
    """A selection that cannot be made (unknown method, missing statistics, bad options)."""


@dataclass(frozen=True)
class Selection:
    """How to order a layer's units: ``method`` and its options."""

    method: str = "random"
    feature: str = "loudness"  # for 'correlation'
    cluster: int = 0  # for 'cluster': which cluster
    clusters: int = 8  # for 'cluster': how many


def ranks_from_order(order: np.ndarray, n_units: int) -> np.ndarray:
    """Position of each unit in ``order``; units not in it get ``n_units`` (never selected)."""
    ranks = np.full(n_units, n_units, np.int32)
    ranks[order] = np.arange(len(order), dtype=np.int32)
    return ranks


def kmeans(profiles: np.ndarray, k: int, seed: int, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Plain k-means (k-means++ start) of rows; returns labels and centroids."""
    rng = np.random.default_rng(seed)
    centroids = [profiles[rng.integers(len(profiles))]]
    for _ in range(1, k):
        distance = np.min([np.sum((profiles - c) ** 2, axis=1) for c in centroids], axis=0)
        total = distance.sum()
        centroids.append(profiles[rng.choice(len(profiles), p=distance / total)] if total > 0
                         else profiles[rng.integers(len(profiles))])
    centroids = np.array(centroids)
    labels = np.zeros(len(profiles), int)
    for _ in range(iterations):
        distances = ((profiles[:, None, :] - centroids[None]) ** 2).sum(-1)
        new_labels = distances.argmin(1)
        if np.array_equal(new_labels, labels) and _ > 0:
            break
        labels = new_labels
        for cluster in range(k):
            members = profiles[labels == cluster]
            if len(members):
                centroids[cluster] = members.mean(0)
    return labels, centroids


def unit_order(selection: Selection, n_units: int, seed: int, statistics: dict[str, np.ndarray] | None,
               point: str) -> np.ndarray:
    """The units in the order a rising proportion selects them."""
    method = selection.method
    if method == "random":
        return np.random.default_rng(seed).permutation(n_units)
    if statistics is None:
        raise SelectionError(f"selection {method!r} needs the model's unit statistics (`tuibend units MODEL` "
                             "computes and caches them)")
    if method == "variance":
        return np.argsort(-statistics[f"{point}/variance"], kind="stable")
    if method == "correlation":
        if selection.feature not in FEATURES:
            raise SelectionError(f"correlation feature {selection.feature!r}: use one of {', '.join(FEATURES)}")
        return np.argsort(-np.abs(statistics[f"{point}/correlation/{selection.feature}"]), kind="stable")
    if method == "cluster":
        labels = statistics.get(f"{point}/clusters/{selection.clusters}")
        if labels is None:
            raise SelectionError(f"no {selection.clusters}-cluster statistics for {point}")
        if not 0 <= selection.cluster < selection.clusters:
            raise SelectionError(f"cluster {selection.cluster} is outside 0..{selection.clusters - 1}")
        members = np.flatnonzero(labels == selection.cluster)
        return members[np.random.default_rng(seed).permutation(len(members))]
    raise SelectionError(f"unknown selection method {method!r}: use one of {', '.join(METHODS)}")
