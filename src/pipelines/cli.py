"""`python -m pipelines ...`: the demo, set-up, loading data, one task without Airflow, Airflow itself.

Every command works on the stack that the settings describe: the embedded PostgreSQL by default, or the
external databases named by PIPELINES_WAREHOUSE_URL and AIRFLOW__DATABASE__SQL_ALCHEMY_CONN.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.dates import parse_date
from pipelines.errors import ConfigError, PipelineError
from pipelines.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from pipelines.sources import StoreConfig
    from pipelines.stack import Stack

log = logging.getLogger("pipelines")


def _stack(settings: Settings, *, prepare: bool = False) -> Stack:
    from pipelines import stack as stack_mod

    current = stack_mod.resolve(settings)
    if prepare:
        stack_mod.prepare(current)
    return current


def _engine(settings: Settings) -> Engine:
    from pipelines.warehouse.engine import get_engine
    from pipelines.warehouse.migrations import apply_migrations

    engine = get_engine(_stack(settings).warehouse_url)
    apply_migrations(engine)
    return engine


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.warehouse.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(settings.pgdata, settings.embedded_port)
    if args.action == "start":
        print(_stack(settings).warehouse_url)
    elif args.action == "stop":
        server.stop()
        print("embedded PostgreSQL stopped")
    else:
        print(f"embedded PostgreSQL in {settings.pgdata}: {'running' if server.is_running() else 'stopped'}")
    return 0


def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    if args.create_databases:
        from sqlalchemy.engine import make_url

        from pipelines.stack import AIRFLOW_DB_ENV
        from pipelines.warehouse.engine import ensure_database

        for url in (settings.warehouse_url, os.environ.get(AIRFLOW_DB_ENV)):
            if url:
                ensure_database(url, make_url(url).database)
    stack = _stack(settings, prepare=True)
    print(f"warehouse: {stack.warehouse_url}\nairflow metadata: {stack.airflow_db_url}")
    return 0


def _load_demo_store(engine: Engine, settings: Settings) -> None:
    from pipelines.demo import DEMO_STORE
    from pipelines.sources import StoreConfig, load_synthetic_store

    summary = load_synthetic_store(engine, StoreConfig(**DEMO_STORE), settings.fashion_mnist_path())
    print(summary)


def _store_config(args: argparse.Namespace) -> StoreConfig:
    from pipelines.sources import StoreConfig

    return StoreConfig(
        users=args.users, items=args.items, days=args.days, end_date=parse_date(args.end_date), seed=args.seed
    )


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.sources import load_synthetic_store

    print(load_synthetic_store(_engine(settings), _store_config(args), settings.fashion_mnist_path()))
    return 0


def simulate_dates(engine: Engine, store: StoreConfig, dates: Sequence[dt.date], settings: Settings) -> None:
    """The simulated store's impressions and outcomes of each date, from the plan of the date before."""
    from pipelines.delivery.config import DeliveryConfig
    from pipelines.sources.response import ResponseModel
    from pipelines.sources.simulate import simulate_day
    from pipelines.sources.world import build_world
    from pipelines.tasks import stage_config

    world = build_world(store)
    delivery = stage_config(DeliveryConfig(), "delivery", settings, {})  # the planner's holdout key and share
    response = ResponseModel(world)
    for day in dates:
        print(simulate_day(engine, world, day, delivery, response))


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    simulate_dates(_engine(settings), _store_config(args), [parse_date(args.date)], settings)
    return 0


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines import sources

    if args.dataset == "openbandit":
        folder = Path(args.path) if args.path else settings.shared_data_dir / "open-bandit"
        print(sources.load_open_bandit(_engine(settings), folder))
        return 0
    if not args.path:
        raise ConfigError(f"`load {args.dataset}` needs the path of the dataset's file")
    loader = {"tafeng": sources.load_tafeng, "amazon": sources.load_amazon}[args.dataset]
    print(loader(_engine(settings), Path(args.path)))
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from pipelines import tasks
    from pipelines.compute import set_torch_threads

    if settings.torch_threads is not None:  # else torch's default: this one task may use every core
        set_torch_threads(settings.torch_threads)
    summary = tasks.STEPS[args.step](_engine(settings), parse_date(args.date), settings, json.loads(args.params))
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    import getpass
    import json

    from pipelines.privacy.steps import erase_users

    summary = erase_users(
        _engine(settings), settings, {"user_ids": args.user_ids}, f"pipelines erase ({getpass.getuser()})"
    )
    print(json.dumps(summary, indent=2))
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.report import build_report, format_report

    print(format_report(build_report(_engine(settings), parse_date(args.date))))
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.demo import DEMO_DATES, DEMO_STORE, demo_run
    from pipelines.report import build_report, format_report
    from pipelines.sources import StoreConfig
    from pipelines.stack import dags_test
    from pipelines.warehouse.engine import get_engine

    started = time.monotonic()
    print("1/4 databases and Airflow set-up (embedded PostgreSQL unless configured otherwise)")
    stack = _stack(settings, prepare=True)
    engine = get_engine(stack.warehouse_url)
    print("2/4 generating and loading the sample store")
    _load_demo_store(engine, settings)
    first, *loop = DEMO_DATES
    print(f"3/4 running marketing_daily for {first} as a real Airflow DAG run (airflow dags test)")
    code = dags_test(stack, **demo_run(first, train=True))
    loop_started = time.monotonic()
    for day in loop if code == 0 else []:
        print(f"    delivery loop, {day}: the simulated store serves the plan of the day before, then marketing_daily")
        simulate_dates(engine, StoreConfig(**DEMO_STORE), [day], settings)
        code = dags_test(stack, **demo_run(day, train=False))
        if code:
            break
    loop_seconds = time.monotonic() - loop_started
    print("4/4 what the runs wrote\n")
    for day in DEMO_DATES:
        print(format_report(build_report(engine, day)), end="\n\n")
    print(f"artifacts: {settings.artifacts}")
    print(f"warehouse: {stack.warehouse_url}")
    print(
        f"finished in {time.monotonic() - started:.0f} s (the delivery loop's {len(loop)} days: {loop_seconds:.0f} s); "
        "`make airflow` opens the same results in the UI"
    )
    return code


def cmd_airflow(args: argparse.Namespace, settings: Settings) -> int:
    standalone = args.airflow_args[:1] == ["standalone"]
    stack = _stack(settings, prepare=standalone)
    argv = [sys.executable, "-m", "airflow", *args.airflow_args]
    if not standalone:
        os.execvpe(sys.executable, argv, stack.airflow_env())
    from pipelines.processes import run_group
    from pipelines.stack import secure_passwords_file

    passwords = secure_passwords_file(settings)
    print(
        f"Airflow UI: http://localhost:8080, listening on {settings.api_host} (PIPELINES_API_HOST); user admin, "
        f"password in {passwords}. `make stop` stops every process this starts."
    )
    return run_group(argv, stack.airflow_env(), settings.standalone_pid_file)


def cmd_stop(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.processes import stop
    from pipelines.warehouse.embedded import EmbeddedPostgres

    stopped = stop(settings.standalone_pid_file)
    if stopped:
        print(f"stopped airflow standalone: {len(stopped)} process(es)")
        for process in stopped:
            print(f"  {process}")
    else:
        print("airflow standalone: not running")
    server = EmbeddedPostgres(settings.pgdata, settings.embedded_port)
    if server.is_running():
        server.stop()
        print(f"stopped the embedded PostgreSQL in {settings.pgdata}")
    else:
        print("embedded PostgreSQL: not running")
    return 0


def _store_arguments(parser: argparse.ArgumentParser, *, end_date_required: bool) -> None:
    """The synthetic store's options; their defaults are the demo store's."""
    from pipelines.demo import DEMO_STORE

    parser.add_argument("--users", type=int, default=DEMO_STORE["users"])
    parser.add_argument("--items", type=int, default=DEMO_STORE["items"])
    parser.add_argument("--days", type=int, default=DEMO_STORE["days"])
    parser.add_argument(
        "--end-date",
        required=end_date_required,
        default=None if end_date_required else DEMO_STORE["end_date"].isoformat(),
        help="last business date of the store, YYYY-MM-DD",
    )
    parser.add_argument("--seed", type=int, default=DEMO_STORE["seed"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the embedded PostgreSQL server")
    db.add_argument("action", choices=["start", "stop", "status"])
    db.set_defaults(func=cmd_db)

    stop = sub.add_parser("stop", help="stop every process `airflow standalone` started, then the embedded PostgreSQL")
    stop.set_defaults(func=cmd_stop)

    setup = sub.add_parser("setup", help="databases, migrations, Airflow metadata, pool gpu, connection")
    setup.add_argument("--create-databases", action="store_true", help="create the external databases when missing")
    setup.set_defaults(func=cmd_setup)
    sub.add_parser("demo", help="set up, load the sample store, run marketing_daily once, print it").set_defaults(
        func=cmd_demo
    )

    gen = sub.add_parser("generate", help="generate and load a synthetic store (replaces the source tables)")
    _store_arguments(gen, end_date_required=True)
    gen.set_defaults(func=cmd_generate)

    sim = sub.add_parser(
        "simulate",
        help="the simulated store's impressions and outcomes of a date, served from the previous date's plan "
        "(replaces that date's batch); the store options must be those it was generated with",
    )
    sim.add_argument("--date", required=True, help="business date to simulate, YYYY-MM-DD")
    _store_arguments(sim, end_date_required=False)
    sim.set_defaults(func=cmd_simulate)

    load = sub.add_parser(
        "load",
        help="load a real dataset: tafeng, amazon (replace the source tables) or openbandit (replaces the "
        "impressions and outcomes of its dates; path: the open-bandit folder, default under "
        "PIPELINES_SHARED_DATA_DIR)",
    )
    load.add_argument("dataset", choices=["tafeng", "amazon", "openbandit"])
    load.add_argument("path", nargs="?")
    load.set_defaults(func=cmd_load)

    run = sub.add_parser("run", help="run one task function for a date, without Airflow")
    run.add_argument("step")
    run.add_argument("--date", required=True)
    run.add_argument("--params", default="{}", help='the run params as JSON, e.g. {"force_promote": true}')
    run.set_defaults(func=cmd_run)

    erase = sub.add_parser("erase", help="erase customers now, without their ids passing through Airflow")
    erase.add_argument("user_ids", nargs="*", help="the user ids; none: erase the pending requests only")
    erase.set_defaults(func=cmd_erase)

    report = sub.add_parser("report", help="what was written for a business date")
    report.add_argument("--date", required=True)
    report.set_defaults(func=cmd_report)

    af = sub.add_parser("airflow", help="the Airflow CLI on this stack, e.g. `airflow standalone`")
    af.add_argument("airflow_args", nargs=argparse.REMAINDER)
    af.set_defaults(func=cmd_airflow)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, Settings.from_env())
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
