"""The DQ table's observed values in words, for every shape the gate stores (pipelines.quality.validation)."""

from __future__ import annotations

import pytest

from pipelines.web.observed import describe_observed


@pytest.mark.parametrize(
    ("observed", "words"),
    [
        (None, ""),
        ({"element_count": 4143, "unexpected_percent": 0.0}, "4,143 rows, 0.0% unexpected"),
        ({"element_count": 1, "unexpected_percent": 12.3456}, "1 row, 12.3% unexpected"),
        (0, "0"),
        (1250000, "1,250,000"),
        ("BIGINT", "BIGINT"),
        (["batch_date", "event_id", "user_id"], "batch_date, event_id and user_id"),
        (list("abcdefgh"), "a, b, c, d, e, f and 2 more"),
        ([], "none"),
        ({"min": 0.5, "max": 120}, "min 0.5, max 120"),
        ({"min_value": "2024-03-01", "max_value": "2024-03-31"}, "min 2024-03-01, max 2024-03-31"),
        ({"max": 7.0}, "max 7"),
        (
            {"observed": 4143, "trailing_mean": 4100.5, "history_days": 7, "allowed": [3075.38, 5125.63]},
            "4,143; trailing mean 4,100.50 over 7 days; allowed 3,075.38 to 5,125.63",
        ),
        (
            {"observed": 12, "note": "no events in the 7 days before: nothing to compare the volume with"},
            "12; no events in the 7 days before: nothing to compare the volume with",
        ),
        ({"error": "column 'price' does not exist"}, "could not be checked: column 'price' does not exist"),
        ({"distinct_values": ["view", "buy"], "is_sorted": False}, "distinct values: view and buy; is sorted: no"),
    ],
)
def test_observed_value_reads_as_words(observed: object, words: str) -> None:
    assert describe_observed(observed) == words


def test_no_observed_value_shape_renders_as_json() -> None:
    nested = {"observed": {"element_count": 10, "unexpected_percent": 50.0}, "weights": {"a": 1}}
    text = describe_observed(nested)
    assert text == "10 rows, 50.0% unexpected; weights: (a: 1)"
    assert "{" not in text and '"' not in text
