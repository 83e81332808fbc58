"""Segments: k-means, stable ids through Hungarian matching, PSI drift and readable labels."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.profiles.segments import PreviousSegments, describe, match_ids, population_stability, segment


def _blobs(seed: int, n_per: int = 100) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], dtype=np.float64)
    points = np.concatenate([c + rng.normal(size=(n_per, 3)) for c in centres])
    return points, np.repeat(np.arange(4), n_per)


def _previous(result, as_of: str = "2026-03-01") -> PreviousSegments:  # type: ignore[no-untyped-def]
    return PreviousSegments(as_of, result.segment_ids, result.centroids, result.sizes())


def test_kmeans_recovers_separated_groups() -> None:
    points, truth = _blobs(0)
    result = segment(points, k=4, iterations=50, seed=1)
    assert sorted(result.segment_ids.tolist()) == [0, 1, 2, 3]
    for group in range(4):
        assert len(set(result.assignment[truth == group].tolist())) == 1
    assert sorted(result.sizes().tolist()) == [100, 100, 100, 100]


def test_segments_are_identical_when_the_data_does_not_change() -> None:
    points, _ = _blobs(0)
    first = segment(points, k=4, iterations=50, seed=1)
    second = segment(points, k=4, iterations=50, seed=99, previous=_previous(first))
    np.testing.assert_array_equal(second.assignment, first.assignment)
    np.testing.assert_allclose(second.centroids, first.centroids)
    assert second.matched.all()


def test_ids_are_kept_when_the_data_changes_a_little() -> None:
    points, truth = _blobs(0)
    first = segment(points, k=4, iterations=50, seed=1)
    moved, _ = _blobs(5)  # same groups, fresh noise
    moved = moved + 0.5
    # Another seed would number the groups differently; matching to the previous run restores the ids.
    second = segment(moved, k=4, iterations=50, seed=12345, previous=_previous(first))
    for group in range(4):
        assert set(second.assignment[truth == group].tolist()) == set(first.assignment[truth == group].tolist())
    assert second.matched.all()


def test_hungarian_matching_follows_centroids_and_new_clusters_get_unused_ids() -> None:
    previous = PreviousSegments("d", np.array([3, 7]), np.array([[0.0, 0.0], [10.0, 10.0]]), np.array([5, 5]))
    new = np.array([[9.0, 9.5], [20.0, -20.0], [0.5, -0.2]])
    ids, matched = match_ids(new, previous)
    assert ids.tolist() == [7, 8, 3]
    assert matched.tolist() == [True, False, True]


def test_fewer_clusters_than_before_keep_the_nearest_ids() -> None:
    previous = PreviousSegments("d", np.array([0, 1, 2]), np.array([[0.0], [5.0], [10.0]]), np.array([1, 1, 1]))
    ids, matched = match_ids(np.array([[9.0], [0.2]]), previous)
    assert ids.tolist() == [2, 0] and matched.all()


def test_psi_is_near_zero_for_the_same_population_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(5000, 4))
    same = rng.normal(size=(5000, 4))
    shifted = rng.normal(loc=1.0, size=(5000, 4))
    assert population_stability(reference, same, bins=10) < 0.02
    assert population_stability(reference, shifted, bins=10) > 0.25
    assert np.isnan(population_stability(reference[:0], same, bins=10))


def test_labels_name_what_sets_each_segment_apart() -> None:
    names = ["Bags", "Coats", "Dresses", "Sneakers"]
    # Everyone likes Bags most; segment 0 leans to Sneakers and Coats, segment 1 to Dresses.
    affinity = np.array([[0.4, 0.2, 0.05, 0.35]] * 10 + [[0.5, 0.05, 0.4, 0.05]] * 10)
    assignment = np.repeat([0, 1], 10)
    tops, labels = describe(affinity, assignment, np.array([0, 1]), names, n=2)
    assert labels == ["Sneakers & Coats", "Dresses & Bags"]
    assert tops[0][0] == {"category": "Sneakers", "affinity": pytest.approx(0.35), "lift": pytest.approx(0.35 / 0.2)}
