"""A data-quality result's observed value (dq_results.observed_value, JSON) as a person reads it.

The gate stores what Great Expectations observed in a few shapes (pipelines.quality.validation.to_result):
a count, a type name, a column list, `{"element_count", "unexpected_percent"}` for per-row checks,
`{"error": ...}` when a check could not run, and `{"observed": ..., <context>}` when the check carries
context such as the volume baseline. Each becomes a short phrase; an unknown shape still reads as
"key: value" pairs rather than raw JSON, so a new expectation never shows braces on the page.
"""

from __future__ import annotations

import math
from typing import Any

LIST_SHOWN = 6  # items of a list spelled out before "and N more"
# Field names read better as these words (anything else: underscores become spaces).
FIELD_WORDS = {
    "element_count": "rows",
    "unexpected_count": "unexpected rows",
    "trailing_mean": "trailing mean",
    "history_days": "days of history",
}


def describe_observed(value: Any) -> str:
    """One line of words for an observed value; '' when nothing was observed."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return _describe_mapping(value)
    return _words(value)


def _describe_mapping(value: dict[str, Any]) -> str:
    rest = dict(value)
    parts: list[str] = []
    if "error" in rest:
        parts.append(f"could not be checked: {_words(rest.pop('error'))}")
    if "observed" in rest:
        parts.append(describe_observed(rest.pop("observed")) or "nothing observed")
    counted = []
    if "element_count" in rest:
        rows = rest.pop("element_count")
        counted.append(f"{_words(rows)} row{'' if rows == 1 else 's'}")
    if "unexpected_percent" in rest:
        counted.append(f"{_percent(rest.pop('unexpected_percent'))} unexpected")
    if counted:
        parts.append(", ".join(counted))
    low = _pop_first(rest, "min", "min_value", "low")
    high = _pop_first(rest, "max", "max_value", "high")
    if low is not None and high is not None:
        parts.append(f"min {_words(low)}, max {_words(high)}")
    elif low is not None:
        parts.append(f"min {_words(low)}")
    elif high is not None:
        parts.append(f"max {_words(high)}")
    if "trailing_mean" in rest:
        mean = f"trailing mean {_words(rest.pop('trailing_mean'))}"
        if "history_days" in rest:
            days = rest.pop("history_days")
            mean += f" over {_words(days)} day{'' if days == 1 else 's'}"
        parts.append(mean)
    allowed = rest.pop("allowed", None)
    if isinstance(allowed, list) and len(allowed) == 2:
        parts.append(f"allowed {_words(allowed[0])} to {_words(allowed[1])}")
    elif allowed is not None:
        parts.append(f"allowed {_words(allowed)}")
    if "note" in rest:
        parts.append(_words(rest.pop("note")))
    parts += [f"{FIELD_WORDS.get(key, key.replace('_', ' '))}: {_words(item)}" for key, item in rest.items()]
    return "; ".join(part for part in parts if part)


def _pop_first(mapping: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in mapping:
            return mapping.pop(key)
    return None


def _percent(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.1f}%"
    return "?%" if value is None else f"{_words(value)}%"


def _words(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, list):
        shown = [_words(item) for item in value[:LIST_SHOWN]]
        if not shown:
            return "none"
        if len(value) > LIST_SHOWN:
            return f"{', '.join(shown)} and {len(value) - LIST_SHOWN} more"
        return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"
    if isinstance(value, dict):
        return f"({_describe_mapping(value)})"
    return str(value)
