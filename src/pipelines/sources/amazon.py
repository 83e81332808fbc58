"""Amazon review sequences in the S3-Rec format ("user item item ..." per line, in order) -> source tables.

The format has no timestamps, prices or category names, so the loader assigns them, documented here:

- dates: one interaction a day, counting back from `anchor_date`: a user's last item is on the anchor
  date, the one before on the day before, and so on. Order is kept, and the leave-one-out split of
  the papers becomes a date split: as of anchor_date - 1 every user's test item is still unseen.
  (So every user is active on the anchor date: that day's volume is far above its trailing mean.)
- time of day: 12:00 UTC plus (user_id mod 3600) seconds, spreading users over an hour;
- events: event_type "purchase" (a review stands for a purchase), quantity 1, price 0.00 (unknown);
- items: category = the file's stem in lower case (e.g. "beauty" for Beauty.txt), price 0.00 (unknown),
  title "<Stem> item <id>"; ids as in the file;
- users: signup_date = the date of the first interaction; age_group and region unknown (NULL).

The *_item2attributes.json beside the file holds attribute ids without names and is not used.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from pipelines.errors import ConfigError, SourceFormatError
from pipelines.sources.load import LoadSummary, replace_source_tables
from pipelines.sources.rows import EventBuffer, frame_of

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_ANCHOR = dt.date(2026, 6, 30)
NOON_S = 12 * 3600


def sequences_file(path: Path) -> Path:
    """`path` itself, or the one sequences file (*.txt other than README.txt) in the folder `path`."""
    if not path.is_dir():
        return path
    found = sorted(p for p in path.glob("*.txt") if not p.name.lower().startswith("readme"))
    if len(found) != 1:
        raise ConfigError(f"{path}: expected one sequences file (*.txt) in the folder, found {len(found)}")
    return found[0]


class _Parser:
    def __init__(self, path: Path, anchor_date: dt.date, chunk_rows: int) -> None:
        self.path = path
        self.anchor_date = anchor_date
        self.chunk_rows = chunk_rows
        self.users: dict[int, tuple[dt.date, int]] = {}  # id -> (first date, line)
        self.items: set[int] = set()
        self.category = path.stem.lower()

    def fail(self, line: int, reason: str) -> SourceFormatError:
        return SourceFormatError(self.path, line, reason)

    def events(self) -> Iterator[pd.DataFrame]:
        if not self.path.exists():
            raise SourceFormatError(self.path, None, "no such file")
        buffer = EventBuffer(self.chunk_rows)
        event_id = 0
        line = 0
        with self.path.open(encoding="utf-8") as text:
            for line, raw in enumerate(text, start=1):
                fields = raw.split()
                if len(fields) < 2:
                    raise self.fail(line, f"expected 'user item [item ...]', got {len(fields)} field(s)")
                user, *sequence = (self._id(line, field) for field in fields)
                if user in self.users:
                    raise self.fail(line, f"user {user} appears again (first on line {self.users[user][1]})")
                first_day = self.anchor_date - dt.timedelta(days=len(sequence) - 1)
                self.users[user] = (first_day, line)
                second = NOON_S + user % 3600
                for k, item in enumerate(sequence):
                    event_id += 1
                    buffer.add(first_day + dt.timedelta(days=k), event_id, user, item, "purchase", second, 0.0, 1)
                    self.items.add(item)
                if buffer.full():
                    yield from buffer.flush()
        if line == 0:
            raise self.fail(1, "the file is empty; expected lines 'user item [item ...]'")
        yield from buffer.flush()

    def _id(self, line: int, text: str) -> int:
        if not (text.isascii() and text.isdigit()) or int(text) == 0:
            raise self.fail(line, f"id {text!r} is not a positive integer")
        return int(text)

    def users_frame(self) -> pd.DataFrame:
        rows = [(uid, first.isoformat(), None, None) for uid, (first, _) in self.users.items()]
        return frame_of(("user_id", "signup_date", "age_group", "region"), rows)

    def items_frame(self) -> pd.DataFrame:
        title = self.path.stem
        rows = [(iid, self.category, 0.0, f"{title} item {iid}") for iid in sorted(self.items)]
        return frame_of(("item_id", "category", "price", "title"), rows)


def load_amazon(
    engine: Engine, path: Path, *, anchor_date: dt.date = DEFAULT_ANCHOR, chunk_rows: int = 100_000
) -> LoadSummary:
    """Replace the source tables with the S3-Rec sequences at `path` (the .txt file or its folder)."""
    if not isinstance(anchor_date, dt.date):
        raise ConfigError(f"anchor_date must be a date, got {anchor_date!r}")
    parser = _Parser(sequences_file(Path(path)), anchor_date, chunk_rows)

    def tables() -> Iterator[tuple[str, Iterator[pd.DataFrame] | list[pd.DataFrame]]]:
        yield "events", parser.events()
        # Users and items are complete only once every line has been read.
        yield "users", [parser.users_frame()]
        yield "items", [parser.items_frame()]

    return replace_source_tables(engine, f"Amazon {parser.path.name}", tables())
