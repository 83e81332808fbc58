"""The throttled progress logger, driven by a fake clock."""

from __future__ import annotations

import logging
import time

import pytest

from pipelines.progress import Progress, format_duration, format_rate, heartbeat

LOGGER = "tests.progress"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def test_logs_at_most_once_per_interval_with_counts_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    progress = Progress(logging.getLogger(LOGGER), "GAN training", 400, "steps", interval=20, clock=clock)
    caplog.set_level(logging.INFO, logger=LOGGER)
    logged = []
    for _ in range(100):  # 100 steps of 0.5 s: 50 s in all
        clock.now += 0.5
        logged.append(progress.advance())
    assert [n + 1 for n, did in enumerate(logged) if did] == [40, 80]  # at 20 s and at 40 s
    assert lines(caplog) == [
        "GAN training: 40/400 steps (10%), 2.00 steps/s, 20 s elapsed, ETA 3 min 00 s",
        "GAN training: 80/400 steps (20%), 2.00 steps/s, 40 s elapsed, ETA 2 min 40 s",
    ]


def test_a_long_silent_gap_is_reported_on_the_next_unit(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    progress = Progress(logging.getLogger(LOGGER), "VAE training", 10, "batches", interval=20, clock=clock)
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock.now += 5
    assert not progress.advance(note="epoch 1/5")
    clock.now += 95  # one slow batch
    assert progress.advance(note="epoch 1/5")
    assert lines(caplog) == [
        "VAE training: 2/10 batches (20%), 0.02 batches/s, 1 min 40 s elapsed, ETA 6 min 40 s, epoch 1/5"
    ]


def test_a_resumed_loop_counts_only_its_own_units_for_the_rate(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    progress = Progress(logging.getLogger(LOGGER), "GAN training", 1000, "steps", start=920, interval=10, clock=clock)
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _ in range(80):
        clock.now += 0.125
        progress.advance()
    assert lines(caplog) == ["GAN training: 1000/1000 steps (100%), 8.00 steps/s, 10 s elapsed, done"]


def test_no_rate_yet_means_no_eta() -> None:
    clock = FakeClock()
    progress = Progress(logging.getLogger(LOGGER), "x", 5, "steps", clock=clock)
    clock.now += 30
    assert progress.line(clock.now).endswith("0 steps/s, 30 s elapsed, ETA unknown")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="interval > 0"):
        Progress(logging.getLogger(LOGGER), "x", 5, "steps", interval=0)
    with pytest.raises(ValueError, match="total >= 0"):
        Progress(logging.getLogger(LOGGER), "x", -1, "steps")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0 s"), (59.6, "1 min 00 s"), (185, "3 min 05 s"), (7620, "2 h 07 min")]
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("rate", "text"), [(1234.4, "1234"), (56.74, "56.7"), (2.0, "2.00"), (0.1234, "0.123")])
def test_rates_have_three_significant_digits_without_exponents(rate: float, text: str) -> None:
    assert format_rate(rate) == text


def test_heartbeat_logs_while_a_long_step_runs_and_nothing_for_a_quick_one(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("heartbeat-test")
    with caplog.at_level(logging.INFO, logger="heartbeat-test"):
        with heartbeat("summing", logger, interval=0.05):
            time.sleep(0.3)
        beats = len(caplog.records)
        with heartbeat("quick", logger, interval=0.5):
            pass
    assert beats >= 3 and all(r.getMessage().startswith("summing: ") for r in caplog.records)
    assert len(caplog.records) == beats
