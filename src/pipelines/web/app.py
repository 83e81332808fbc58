"""The Marketing pages: a small FastAPI app that the Airflow plugin mounts on the API server at /marketing.

Who the user is comes from outside (`current_user`, Airflow's own authentication in the plugin), so the
app holds no login logic of its own and every route, images and files included, refuses anonymous
requests. The review POST also needs an anti-forgery token (pipelines.web.csrf). The warehouse engine is
made on first use: importing the plugin must not open database connections.
"""

import datetime as dt
import logging
import mimetypes
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.engine import Engine

from pipelines.web import csrf, effects, queries
from pipelines.web.observed import describe_observed

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
UserDependency = Callable[..., Awaitable[str]] | Callable[..., str]
RunDateResolver = Callable[[str, str], dt.date | None]


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["metric"] = lambda v: "" if v is None else f"{v:.4f}"
    env.filters["percent"] = lambda v: "" if v is None else f"{v:.1%}"
    env.filters["observed"] = describe_observed
    env.filters["reason"] = describe_reason
    return env


# What a user did with the item behind a model recommendation, by the event type of their last such event.
_DID = {"purchase": "bought {}", "cart": "put {} in your cart", "view": "viewed {}"}
_FALLBACK_REASONS = {"popular_in_segment": "popular in your segment", "popular_in_store": "popular in the store"}


def describe_reason(row: Any) -> str:
    """A recommendation's reason in words: "because you bought <title>", "popular in your segment", or ""
    for rows written before reasons were stored."""
    code = row["reason_code"]
    if code != "history_item":
        return _FALLBACK_REASONS.get(code, "")
    item = row["reason_title"] or f"item {row['reason_item_id']}"
    return "because you " + _DID.get(row["reason_event"] or "", "showed interest in {}").format(item)


def _parse_day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise HTTPException(status_code=404, detail=f"not a business date: {value!r}") from None


def create_app(
    engine: Callable[[], Engine],
    *,
    current_user: UserDependency,
    csrf_key: bytes,
    artifacts_dir: Path,
    run_date: RunDateResolver | None = None,
) -> FastAPI:
    """Build the app. `engine` is called on first use; `current_user` is a FastAPI dependency that
    returns the logged-in user's name or raises 401; `run_date` maps (dag_id, run_id) to its business date.
    """
    app = FastAPI(title="Marketing", docs_url=None, redoc_url=None, openapi_url=None)
    env = _environment()
    artifacts_root = artifacts_dir.resolve()
    User = Annotated[str, Depends(current_user)]

    def render(request: Request, template: str, user: str, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(
            base=request.scope.get("root_path", ""),
            user=user,
            csrf_token=csrf.issue(csrf_key, user),
            **context,
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def date_page(
        request: Request,
        user: str,
        day: dt.date,
        run: tuple[str, str] | None = None,
        days: list[queries.BusinessDay] | None = None,
        landing: bool = False,
    ) -> HTMLResponse:
        started = time.perf_counter()
        with engine().connect() as conn:
            days = days if days is not None else queries.business_dates(conn)
            context = {
                "day": day,
                "run": run,
                "days": days,
                # on the landing page: the newer dates it skipped because their runs did not complete
                "skipped": [d for d in days if d.day > day] if landing else [],
                "day_state": next((d.state for d in days if d.day == day), None),
                "dq": queries.dq_results(conn, day),
                "served": queries.served_models(conn, day),
                "segments": queries.segments(conn, day),
                "models": queries.model_runs(conn, day),
                "creatives": queries.creatives(conn, day),
                "recommendations": queries.recommendation_sample(conn, day),
            }
        for model in context["models"]:
            model["plots"] = _plots(artifacts_root, model["artifact_path"], model["artifact_sha256"])
        docs = artifacts_root / "data_docs" / day.isoformat() / "index.html"
        context["data_docs"] = docs.relative_to(artifacts_root).as_posix() if docs.is_file() else None
        response = render(request, "date.html", user, **context)
        log.info("marketing page for %s rendered in %.0f ms", day, 1000 * (time.perf_counter() - started))
        return response

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, user: User) -> HTMLResponse:
        with engine().connect() as conn:
            days = queries.business_dates(conn)
            complete = queries.latest_complete_date(conn)
        if not days:
            return render(request, "empty.html", user)
        # A failed run (say a far-future date with no events) must not hide the last good outputs.
        return date_page(request, user, complete or days[0].day, days=days, landing=True)

    @app.get("/dates/{day}", response_class=HTMLResponse)
    def by_date(request: Request, day: str, user: User) -> HTMLResponse:
        return date_page(request, user, _parse_day(day))

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse)
    def by_run(request: Request, dag_id: str, run_id: str, user: User) -> HTMLResponse:
        day = run_date(dag_id, run_id) if run_date is not None else None
        if day is None:
            raise HTTPException(status_code=404, detail=f"no business date known for run {run_id!r} of {dag_id!r}")
        return date_page(request, user, day, run=(dag_id, run_id))

    @app.get("/effects/{day}", response_class=HTMLResponse)
    def effects_page(request: Request, day: str, user: User, segment: int | None = None) -> HTMLResponse:
        date = _parse_day(day)
        with engine().connect() as conn:
            rates = effects.rates(conn, date)
            segments = sorted({r["segment_id"] for r in rates if r["segment_id"] is not None and r["creative_id"]})
            context = {
                "day": date,
                "rates": rates,
                "segments": segments,
                "segment": segment if segment is not None else (segments[0] if segments else None),
                "plan": effects.plan(conn, date),
                **effects.summaries(conn, date),
            }
        return render(request, "effects.html", user, **context)

    @app.get("/effects/{day}/ctr.png")
    def effects_plot(day: str, segment: int, user: User) -> Response:
        date = _parse_day(day)
        with engine().connect() as conn:
            points = effects.series(conn, date, segment)
        png = effects.series_png(points, segment)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

    @app.get("/creatives/image")
    def creative_image(user: User, key: Annotated[queries.CreativeKey, Depends(_creative_key)]) -> Response:
        with engine().connect() as conn:
            png = queries.creative_image(conn, key)
        if png is None:
            raise HTTPException(status_code=404, detail="no such creative")
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

    @app.post("/creatives/review")
    def review(
        request: Request,
        user: User,
        key: Annotated[queries.CreativeKey, Depends(_creative_form_key)],
        decision: Annotated[str, Form()],
        csrf_token: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        if not csrf.verify(csrf_key, user, csrf_token):
            raise HTTPException(status_code=403, detail="missing or invalid anti-forgery token; reload the page")
        if decision not in queries.REVIEW_DECISIONS:
            raise HTTPException(status_code=422, detail=f"decision must be one of {queries.REVIEW_DECISIONS}")
        with engine().begin() as conn:
            found = queries.review_creative(conn, key, decision, user)
        if not found:
            raise HTTPException(status_code=404, detail="no such creative")
        log.info("creative %s %s by %s", key, decision, user)
        back = request.headers.get("referer") or f"{request.scope.get('root_path', '')}/dates/{key.campaign_date}"
        return RedirectResponse(back, status_code=303)

    @app.get("/artifacts/{path:path}")
    def artifact(path: str, user: User) -> FileResponse:
        target = (artifacts_root / path).resolve()
        if not target.is_relative_to(artifacts_root) or not target.is_file():
            raise HTTPException(status_code=404, detail="no such artifact")
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return FileResponse(target, media_type=media_type)

    return app


def _plots(root: Path, artifact_path: str | None, sha256: str | None) -> list[str]:
    """Training-curve PNGs that the model tasks wrote beside the run's artifact, relative to `root`.

    Several versions of a day can share a folder; a PNG named with the artifact's short hash belongs to
    this run, else every PNG of the folder is shown (one-version folders name theirs generically).
    """
    if not artifact_path:
        return []
    folder = Path(artifact_path).resolve().parent
    if not folder.is_relative_to(root) or not folder.is_dir():
        return []
    pngs = sorted(folder.glob("*.png"))
    own = [p for p in pngs if sha256 and sha256[:10] in p.name] or pngs
    return [p.relative_to(root).as_posix() for p in own]


def _creative_key(
    campaign_date: Annotated[dt.date, Query()],
    campaign_id: Annotated[int, Query()],
    segment_id: Annotated[int, Query()],
    category: Annotated[str, Query()],
    rank: Annotated[int, Query()],
    banner_size: Annotated[str, Query()],
) -> queries.CreativeKey:
    return queries.CreativeKey(campaign_date, campaign_id, segment_id, category, rank, banner_size)


def _creative_form_key(
    campaign_date: Annotated[dt.date, Form()],
    campaign_id: Annotated[int, Form()],
    segment_id: Annotated[int, Form()],
    category: Annotated[str, Form()],
    rank: Annotated[int, Form()],
    banner_size: Annotated[str, Form()],
) -> queries.CreativeKey:
    return queries.CreativeKey(campaign_date, campaign_id, segment_id, category, rank, banner_size)
