"""Progress lines for long loops: done/total, rate and ETA, logged at most every `interval` seconds.

Loops report every step (`advance`) and the helper decides by the clock whether to log, so a run of ten
minutes gets a line every 20 s whatever its step time, and a fast run does not flood the task log.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

# Under the 30 s a person should wait for a sign of life, even when one step takes up to 10 s.
DEFAULT_INTERVAL_S = 20.0


def format_duration(seconds: float) -> str:
    """A short human duration: 45 s, 3 min 05 s, 2 h 07 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_rate(rate: float) -> str:
    """About three significant digits without exponents: 1234, 56.7, 2.00, 0.123."""
    if rate >= 100:
        return f"{rate:.0f}"
    if rate >= 10:
        return f"{rate:.1f}"
    return f"{rate:.2f}" if rate >= 1 else f"{rate:.3g}"


class Progress:
    """Throttled progress of one loop towards `total` units (steps, batches).

    The loop calls `advance()` after every unit and the helper decides by the clock whether to log. A
    resumed loop passes the units already done as `start`: they count towards done/total, but the rate
    and the ETA count only the units done since this object was made. `clock` is injectable for tests.
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        total: int,
        unit: str,
        *,
        start: int = 0,
        interval: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total < 0 or interval <= 0:
            raise ValueError(f"Progress needs total >= 0 and interval > 0, got {total} and {interval}")
        self.logger, self.what, self.total, self.unit = logger, what, total, unit
        self.interval, self.clock = interval, clock
        self.done = self.start = start
        self.started = self.last_logged = clock()

    def advance(self, units: int = 1, note: str = "") -> bool:
        """Count `units` more as done; log a line if `interval` has passed since the last. True if it logged.

        `note` adds a few words to the line, e.g. the epoch or why the ETA is an upper bound.
        """
        self.done += units
        now = self.clock()
        if now - self.last_logged < self.interval:
            return False
        self.last_logged = now
        self.logger.info("%s", self.line(now, note))
        return True

    def line(self, now: float, note: str = "") -> str:
        """'<what>: 120/400 steps (30%), 4.00 steps/s, 30 s elapsed, ETA 1 min 10 s[, note]'."""
        elapsed = now - self.started
        rate = (self.done - self.start) / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        if self.done >= self.total:
            eta = "done"
        elif rate > 0:
            eta = f"ETA {format_duration((self.total - self.done) / rate)}"
        else:
            eta = "ETA unknown"
        extra = f", {note}" if note else ""
        return (
            f"{self.what}: {self.done}/{self.total} {self.unit}{share}, {format_rate(rate)} {self.unit}/s, "
            f"{format_duration(elapsed)} elapsed, {eta}{extra}"
        )


@contextlib.contextmanager
def heartbeat(what: str, logger: logging.Logger | None = None, interval: float = DEFAULT_INTERVAL_S) -> Iterator[None]:
    """Log '<what>: N s so far' every `interval` seconds while one long step runs that reports nothing
    itself (a single SQL statement), so its task log shows a sign of life; a quick step logs nothing."""
    logger = logger or logging.getLogger(__name__)
    stop = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not stop.wait(interval):
            logger.info("%s: %s so far", what, format_duration(time.monotonic() - started))

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
