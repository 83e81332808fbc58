"""The one registry of personal data: which tables hold a customer's rows, and which models learn from them.

An erasure walks `PERSONAL_TABLES` in order, one transaction per entry; a table that does not exist in
this warehouse (a store without the delivery loop has no impressions) is skipped. Adding a table that
holds customer rows is one line here; a test fails while any table with a `user_id` column is missing.
Order matters: rows that are found through another table's rows (outcomes through impressions, data-quality
samples through the user's events) go before those rows, and `users` goes last, so an interrupted erasure
can be resumed while the user is still known.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PersonalTable:
    """A table with a customer's rows: `column` holds the user id, or, with `through`, a key of the user's
    rows in that table (outcomes name an impression, and the impression names the user).

    `kind` says how rows go: 'delete' deletes them; 'profiles' deletes them and takes the user out of the
    member counts (`segments.size`) of the same dates in the same transaction; 'dq_samples' rewrites the
    data-quality samples that quote the user or their events and removes those dates' Data Docs.
    """

    table: str
    column: str = "user_id"
    through: str | None = None
    kind: str = "delete"


PERSONAL_TABLES: tuple[PersonalTable, ...] = (
    PersonalTable("dq_results", "unexpected_sample", kind="dq_samples"),
    PersonalTable("recommendations"),
    PersonalTable("user_profiles", kind="profiles"),
    PersonalTable("outcomes", "impression_id", through="impressions"),
    PersonalTable("impressions"),
    PersonalTable("events"),
    # After events: the events' deletion logs the user's rows as changes, and no later maintenance can
    # bring them back once the events are gone.
    PersonalTable("profile_state_changes"),
    PersonalTable("profile_state"),
    PersonalTable("users"),
)

# Models that learn from no customer data (the GAN learns item pictures): an erasure leaves them valid.
# Every other model task's runs trained before an erasure are stale and never warm-start a later run.
# Names, not imports: the lifecycle reads this, and model packages sit above it.
MODELS_WITHOUT_PERSONAL_DATA: frozenset[str] = frozenset({"creative_gan"})


def learns_from_users(model_name: str) -> bool:
    return model_name not in MODELS_WITHOUT_PERSONAL_DATA
