"""Review of generated creatives outside the Marketing page: the simulated store's automatic approval.

Ad servers read only approved creatives (the view `approved_creatives`), and a person approves them in the
Marketing page. The simulated store has no reviewer, so with `Settings.approves_creatives_automatically`
(PIPELINES_AUTO_APPROVE_CREATIVES; on under the demo profile only) the day's pending creatives are approved
in the name of `AUTO_REVIEWER`, which the Marketing page and `approved_creatives.approved_by` show, so an
automatic approval is never mistaken for a person's.
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.settings import Settings

log = logging.getLogger(__name__)

AUTO_REVIEWER = "auto-approve (simulated store)"


def auto_approve_creatives(engine: Engine | Connection, campaign_date: dt.date, settings: Settings) -> int:
    """Approve the pending creatives of `campaign_date` when the settings allow it; the number approved.

    A person's decisions (approved or rejected) are left as they are; with the setting off nothing changes.
    """
    if not settings.approves_creatives_automatically:
        return 0
    statement = sa.text(
        """UPDATE ad_creatives SET status = 'approved', reviewed_by = :who, reviewed_at = now()
           WHERE campaign_date = :d AND status = 'pending_review'"""
    )
    params = {"who": AUTO_REVIEWER, "d": campaign_date}
    if isinstance(engine, Connection):
        approved = engine.execute(statement, params).rowcount
    else:
        with engine.begin() as conn:
            approved = conn.execute(statement, params).rowcount
    log.info("%s: approved %d pending creatives of %s", AUTO_REVIEWER, approved, campaign_date)
    return approved
