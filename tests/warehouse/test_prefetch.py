"""prefetch: the producing thread hands its errors over and stops when the consumer stops."""

from __future__ import annotations

import threading

import pytest

from pipelines.warehouse.prefetch import prefetch


def test_prefetch_reraises_the_producers_error_and_stops_when_the_consumer_stops() -> None:
    def failing():  # noqa: ANN202
        yield 1
        raise KeyError("producer broke")

    with pytest.raises(KeyError, match="producer broke"):
        list(prefetch(failing()))
    produced: list[int] = []

    def endless():  # noqa: ANN202
        for i in range(10**9):
            produced.append(i)
            yield i

    before = threading.active_count()
    for item in prefetch(endless(), depth=2):
        if item == 3:
            break
    assert threading.active_count() == before  # the worker thread has finished
    assert len(produced) <= 3 + 1 + 2 + 1  # consumed, in the queue, in hand: never runs ahead unbounded
