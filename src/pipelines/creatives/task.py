"""The `generate_ad_creatives` task: train a candidate GAN when the date is new, publish with the champion.

Backfills do not retrain: a date at or before the newest registered run reuses the champion that was
in force on it, so rerunning a past campaign date writes byte-identical creatives with the same recorded
model version. A candidate below the quality gate is registered as rejected and generates nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from pipelines.compute import select_device
from pipelines.creatives.config import MODEL_NAME, CreativesConfig
from pipelines.settings import Settings

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def run(
    engine: Engine,
    as_of: dt.date,
    settings: Settings,
    config: CreativesConfig | None = None,
    *,
    force_promote: bool = False,
) -> dict[str, object]:
    """Train (when due), pick the date's champion, write every live campaign's creatives; small summary."""
    import torch

    config = config or CreativesConfig()
    device = select_device(settings.device)
    threads = torch.get_num_threads()
    if config.cpu_threads and device.type == "cpu":
        torch.set_num_threads(config.cpu_threads)
    try:
        return _run(engine, as_of, settings, config, device, force_promote)
    finally:
        torch.set_num_threads(threads)


def _run(
    engine: Engine,
    as_of: dt.date,
    settings: Settings,
    config: CreativesConfig,
    device: torch.device,
    force_promote: bool,
) -> dict[str, object]:
    import torch

    from pipelines.creatives.bundle import load_bundle
    from pipelines.creatives.candidate import champion_as_of, latest_trained_date, train_candidate
    from pipelines.creatives.plan import live_campaigns
    from pipelines.creatives.publish import publish_creatives
    from pipelines.registry import artifact_dir, load_artifact

    started = time.perf_counter()
    campaigns = live_campaigns(engine, as_of)  # first: a malformed headline template fails before training
    latest = latest_trained_date(engine)
    training: dict[str, Any]
    if config.train_steps == 0:
        training = {"trained": False, "reason": "train_steps is 0"}
    elif latest is not None and latest >= as_of:
        training = {"trained": False, "reason": f"a run for {latest} is registered: past dates reuse their champion"}
    else:
        training = train_candidate(engine, as_of, settings.artifacts, config, device, force_promote=force_promote)

    summary: dict[str, Any] = {"as_of": as_of.isoformat(), "device": str(device), "training": training}
    current = champion_as_of(engine, as_of)
    if current is None or current.artifact_path is None:
        summary |= {"champion": None, "creatives": 0, "reason": "no generator has passed the quality gate yet"}
    else:
        summary["champion"] = current.version
        summary["champion_metrics"] = {k: round(float(v), 5) for k, v in current.metrics.items()}
        if not campaigns:
            log.info("no campaign is live on %s", as_of)
        with torch.inference_mode():
            bundle = load_bundle(load_artifact(current.artifact_path, current.artifact_sha256), current.version, device)
            out_dir = artifact_dir(settings.artifacts, MODEL_NAME, as_of) / "creatives"
            summary |= publish_creatives(engine, as_of, campaigns, bundle, config, out_dir, device)
    summary["live_campaigns"] = [c.campaign_id for c in campaigns]
    summary["seconds"] = round(time.perf_counter() - started, 1)
    log.info("ad creatives for %s: %s", as_of, summary)
    return summary
