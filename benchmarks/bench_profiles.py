"""User-profile VAE benchmarks: Mult-VAE vs popularity vs EASE on real data; epoch time and RSS at 1M users.

`real`: Amazon Beauty (5-core) and Ta-Feng (user x product purchases, 5-core) from the shared data folder.
Strong generalisation as in Liang et al. 2018: users split at random into train / validation / test
(80/10/10); for each validation and test user a random 80% of items is folded in and the rest predicted;
full ranking over every item with the folded-in items excluded; Recall@20, Recall@50 (divided by
min(k, targets)), NDCG@100. The VAE's epoch and EASE's lambda are chosen on validation users only;
test figures are reported once.

`scale`: the synthetic store generator (pipelines.sources) with 1,000,000 users, events weighted as the
task weights them, one or more training epochs: seconds per epoch and peak RSS of the process.

    .venv/bin/python benchmarks/bench_profiles.py real --write-docs
    .venv/bin/python benchmarks/bench_profiles.py scale --write-docs
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import logging
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from common import hardware
from pipelines.compute import derive_seed, seed_everything, select_device
from pipelines.config import apply_overrides
from pipelines.profiles.config import ProfileConfig
from pipelines.profiles.evaluation import (
    Split,
    ease_weights,
    linear_scorer,
    popularity_scorer,
    ranking_metrics,
    strong_generalisation_split,
)
from pipelines.profiles.model import MultVAE
from pipelines.profiles.training import score_rows, train
from pipelines.settings import PROJECT_ROOT, Settings

log = logging.getLogger("bench_profiles")

DOCS = PROJECT_ROOT / "docs" / "benchmarks.md"
SECTION = "## User-profile VAE (bench_profiles.py)"


def beauty(folder: Path) -> sp.csr_matrix:
    """Beauty.txt: 'user item item ...' per line -> binary users x items (ids are contiguous from 1)."""
    rows, cols = [], []
    for number, line in enumerate((folder / "amazon-beauty" / "Beauty.txt").read_text().splitlines(), start=1):
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"Beauty.txt, line {number}: expected 'user item item ...'")
        items = np.unique(np.array(parts[1:], dtype=np.int64)) - 1
        rows.append(np.full(len(items), number - 1))
        cols.append(items)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(r.max() + 1, c.max() + 1))


def tafeng(folder: Path, core: int = 5) -> sp.csr_matrix:
    """Ta-Feng purchases -> binary customers x products, iteratively filtered to a 5-core."""
    import pandas as pd

    frame = pd.read_csv(
        folder / "ta-feng" / "ta_feng.csv.zip", dtype=str, encoding="utf-8-sig", usecols=["CUSTOMER_ID", "PRODUCT_ID"]
    ).drop_duplicates()
    while True:
        items = frame["PRODUCT_ID"].value_counts()
        users = frame["CUSTOMER_ID"].value_counts()
        keep = frame["PRODUCT_ID"].map(items).ge(core) & frame["CUSTOMER_ID"].map(users).ge(core)
        if keep.all():
            break
        frame = frame.loc[keep]
    r = frame["CUSTOMER_ID"].astype("category").cat.codes.to_numpy()
    c = frame["PRODUCT_ID"].astype("category").cat.codes.to_numpy()
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(r.max() + 1, c.max() + 1))


@dataclass
class Result:
    dataset: str
    users: int
    items: int
    interactions: int
    test_users: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    chosen: dict[str, object] = field(default_factory=dict)
    ease_rank_ndcg: dict[int, float] = field(default_factory=dict)  # validation NDCG@100 of EASE cut to rank k


def benchmark(
    name: str,
    matrix: sp.csr_matrix,
    config: ProfileConfig,
    device: torch.device,
    eval_every: int,
    lambdas: tuple[float, ...],
    ranks: tuple[int, ...] = (),
) -> Result:
    seed = derive_seed("bench_profiles", name)
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(matrix.shape[0])
    n_held = matrix.shape[0] // 10
    test_rows, valid_rows, train_rows = order[:n_held], order[n_held : 2 * n_held], order[2 * n_held :]
    train_matrix = matrix[np.sort(train_rows)]
    ids = np.arange(matrix.shape[0])

    def split(rows: np.ndarray, part: str) -> Split:
        rows = np.sort(rows)
        return strong_generalisation_split(
            matrix[rows], ids[rows], config.foldin_fraction, config.eval_min_items, derive_seed(seed, part)
        )

    valid, test = split(valid_rows, "valid"), split(test_rows, "test")
    result = Result(name, matrix.shape[0], matrix.shape[1], int(matrix.nnz), test.n_users)
    log.info("%s: %d users x %d items, %d interactions; %d train, %d validation, %d test users", name,
             *matrix.shape, matrix.nnz, train_matrix.shape[0], valid.n_users, test.n_users)  # fmt: skip

    started = time.perf_counter()
    result.metrics["popularity"] = ranking_metrics(popularity_scorer(train_matrix), test)
    result.seconds["popularity"] = time.perf_counter() - started

    best: dict[str, object] = {"ndcg": -1.0, "epoch": 0, "state": None}

    def keep_best(epoch: int, model: MultVAE) -> None:
        if epoch % eval_every and epoch != config.epochs:
            return
        ndcg = ranking_metrics(lambda rows: score_rows(model, rows, device), valid)["ndcg@100"]
        log.info("%s VAE epoch %d: validation NDCG@100 %.4f", name, epoch, ndcg)
        if ndcg > best["ndcg"]:  # type: ignore[operator]
            best.update(ndcg=ndcg, epoch=epoch, state=copy.deepcopy(model.state_dict()))

    started = time.perf_counter()
    model, history = train(train_matrix, config, device, seed, on_epoch=keep_best)
    result.seconds["vae_train"] = time.perf_counter() - started
    result.seconds["vae_epoch_median"] = float(np.median([h.seconds for h in history]))
    model.load_state_dict(best["state"])  # type: ignore[arg-type]
    result.chosen["vae_epoch"] = best["epoch"]
    result.chosen["epochs_trained"] = len(history)
    if history[-1].epsilon is not None:  # DP-SGD (bench_dp.py): the budget Opacus's accountant says was spent
        result.chosen["epsilon_spent"] = history[-1].epsilon
    result.metrics["Mult-VAE"] = ranking_metrics(lambda rows: score_rows(model, rows, device), test)
    if not lambdas:  # EASE skipped (bench_dp.py scores it once for several VAEs on this split)
        return result

    started = time.perf_counter()
    chosen, best_ndcg, best_weights = 0.0, -1.0, np.empty(0)
    for lam in lambdas:
        weights = ease_weights(train_matrix, lam)
        ndcg = ranking_metrics(linear_scorer(weights), valid)["ndcg@100"]
        log.info("%s EASE lambda %.0f: validation NDCG@100 %.4f", name, lam, ndcg)
        if ndcg > best_ndcg:
            chosen, best_ndcg, best_weights = lam, ndcg, weights
        del weights  # an items x items array: free it before the next solve, unless it is the best
    result.seconds["ease_all_lambdas"] = time.perf_counter() - started
    result.chosen["ease_lambda"] = chosen
    # A lambda at the end of the grid may not be EASE's best: the comparison is only fair if it is inside.
    result.chosen["ease_lambda_at_edge"] = len(lambdas) > 1 and chosen in (min(lambdas), max(lambdas))
    if result.chosen["ease_lambda_at_edge"]:
        log.warning("%s: EASE's best lambda %.0f is at the edge of the grid %s: widen it", name, chosen, lambdas)
    result.metrics["EASE"] = ranking_metrics(linear_scorer(best_weights), test)
    if ranks:
        result.ease_rank_ndcg = truncated_ease_ndcg(best_weights, ranks, valid)
    log.info("%s test: %s", name, json.dumps(result.metrics))
    return result


def truncated_ease_ndcg(weights: np.ndarray, ranks: tuple[int, ...], valid: Split) -> dict[int, float]:
    """Validation NDCG@100 of EASE's item-item weights cut to rank k (truncated SVD), for each k.

    A Mult-VAE's scores pass through its k-dimensional latent: their users x items matrix has rank at most
    k + 1 (the decoder bias), where EASE's is full rank. EASE cut to rank k is one rank-k model, not the
    best one, so it bounds nothing; how its score grows with k shows how much a k-wide bottleneck costs on
    a dataset.
    """
    if max(ranks) > weights.shape[0] or min(ranks) < 1:
        raise ValueError(f"--ease-ranks must lie in 1..{weights.shape[0]} (the item count), got {ranks}")
    started = time.perf_counter()
    u, s, v = torch.svd_lowrank(torch.from_numpy(weights), q=min(max(ranks) + 10, weights.shape[0]), niter=3)
    figures = {}
    for k in ranks:
        truncated = ((u[:, :k] * s[:k]) @ v[:, :k].T).numpy()  # [n_items, n_items], rank k
        figures[k] = ranking_metrics(linear_scorer(truncated), valid)["ndcg@100"]
        log.info("EASE weights cut to rank %d: validation NDCG@100 %.4f", k, figures[k])
    log.info("truncated EASE: %d ranks in %.0f s", len(ranks), time.perf_counter() - started)
    return figures


def scale(
    users: int, items: int, days: int, config: ProfileConfig, device: torch.device, batches: int
) -> dict[str, object]:
    """Generate a store in memory (no database), weight its events as the task does, train and time epochs."""
    from pipelines.profiles.matrix import build_interactions
    from pipelines.sources.config import StoreConfig
    from pipelines.sources.generator import generate_events
    from pipelines.sources.world import build_world

    store = StoreConfig(users=users, items=items, days=days)
    started = time.perf_counter()
    parts, n_events = [], 0
    for frame in generate_events(build_world(store)):
        # Each chunk becomes a small sparse matrix in global (user, item) coordinates; summing them is the
        # same as weighting all events at once, without holding 20M event rows.
        chunk = build_interactions(frame, store.end_date, config)
        coo = chunk.matrix.tocoo()
        parts.append(
            sp.csr_matrix((coo.data, (chunk.user_ids[coo.row] - 1, chunk.item_ids[coo.col] - 1)), shape=(users, items))
        )
        n_events += len(frame)
        if len(parts) >= 16:
            parts = [sum(parts[1:], parts[0]).tocsr()]
    matrix = sum(parts[1:], parts[0]).tocsr()
    active = np.diff(matrix.indptr) > 0
    matrix = matrix[active]
    generate_seconds = time.perf_counter() - started
    log.info("generated %d events -> %d users x %d items, %d non-zeros in %.0f s", n_events, matrix.shape[0],
             items, matrix.nnz, generate_seconds)  # fmt: skip
    rss_before_train = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    seconds = time_batches(matrix, config, device, batches)
    n_batches = -(-matrix.shape[0] // config.batch_size)
    return {
        "store": f"{users:,} users, {items:,} items, {days} days (pipelines.sources generator, seed {store.seed})",
        "events": n_events,
        "users_with_events": int(matrix.shape[0]),
        "nonzeros": int(matrix.nnz),
        "generate_seconds": round(generate_seconds, 1),
        "batches_timed": len(seconds),
        "batches_per_epoch": n_batches,
        "batch_seconds_median": round(float(np.median(seconds)), 3),
        "epoch_seconds": round(float(np.median(seconds)) * n_batches, 1),
        "measured_full_epoch": len(seconds) == n_batches,
        "peak_rss_gb_before_training": round(rss_before_train, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "batch_size": config.batch_size,
        "model": vae_shape(config),
    }


def vae_shape(config: ProfileConfig) -> str:
    from pipelines.profiles.model import VAEConfig

    return VAEConfig.from_task_config(config, 0).shape


def time_batches(matrix: sp.csr_matrix, config: ProfileConfig, device: torch.device, limit: int) -> list[float]:
    """Seconds of each of the first `limit` training updates (0: a whole epoch), exactly as `train` runs them.

    A whole epoch at 1,000,000 users takes long on 2 shared cores; the per-update time is steady after the
    first few, so the epoch time is the median update times the number of updates when `limit` is set.
    """
    from pipelines.profiles.model import VAEConfig
    from pipelines.profiles.training import beta_at, iter_batches

    seed = derive_seed("bench_profiles", "scale")
    torch.manual_seed(seed)
    model = MultVAE(VAEConfig.from_task_config(config, matrix.shape[1])).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=True)
    order = np.random.default_rng(seed).permutation(matrix.shape[0])
    total = -(-matrix.shape[0] // config.batch_size)
    seconds: list[float] = []
    model.train()
    for step, batch in enumerate(iter_batches(matrix, config.batch_size, order)):
        if limit and step == limit:
            break
        started = time.perf_counter()
        loss, _, _ = model.loss(batch.to(device), beta_at(step, total, config))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        seconds.append(time.perf_counter() - started)
        if (step + 1) % 50 == 0:
            log.info("%d updates, median %.3f s per update of %d users", step + 1, np.median(seconds), batch.size)
    return seconds


def lr_schedule(decay_start: float) -> str:
    if decay_start >= 1.0:
        return "constant"
    start = "the first update" if decay_start == 0.0 else f"{decay_start:.0%} of the updates"
    return f"half-cosine decay to 0 from {start}"


def markdown_real(
    results: list[Result], config: ProfileConfig, device: torch.device, lambdas: tuple[float, ...], threads: int
) -> str:
    lines = [
        "### Amazon Beauty and Ta-Feng: Mult-VAE vs popularity vs EASE",
        "",
        f"Run {dt.date.today()}, machine: {hardware()}, device {device}, torch {torch.__version__}, "
        f"{threads} torch thread(s).",
        "Protocol: strong generalisation (Liang et al. 2018): users split 80/10/10; validation and test users",
        "(at least 5 items) have 80% of their items folded in and 20% predicted; full ranking, folded-in items",
        "excluded; Recall@k divides by min(k, targets). Beauty: the 5-core S3-Rec file; Ta-Feng: purchases,",
        f"iterative 5-core. The VAE's epoch and EASE's lambda (from {', '.join(f'{v:.0f}' for v in lambdas)})",
        f"are chosen on validation NDCG@100. Mult-VAE {vae_shape(config)}, Adam lr {config.learning_rate}",
        f"({lr_schedule(config.lr_decay_start)}), batch {config.batch_size}, up to {config.epochs} epochs"
        f"{'' if config.max_train_seconds is None else f' or {config.max_train_seconds:.0f} s'}; other knobs at",
        "the production defaults (ADR 0010).",
        "",
        "| data | users x items (interactions) | test users | model | Recall@20 | Recall@50 | NDCG@100 | train s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        seconds = {"popularity": r.seconds["popularity"], "Mult-VAE": r.seconds["vae_train"],
                   "EASE": r.seconds["ease_all_lambdas"]}  # fmt: skip
        for model in ("popularity", "Mult-VAE", "EASE"):
            m = r.metrics[model]
            edge = ", edge of the grid" if r.chosen["ease_lambda_at_edge"] else ""
            note = {
                "Mult-VAE": f" (epoch {r.chosen['vae_epoch']})",
                "EASE": f" (lambda {r.chosen['ease_lambda']:.0f}{edge})",
            }
            lines.append(
                f"| {r.dataset} | {r.users:,} x {r.items:,} ({r.interactions:,}) | {r.test_users:,} | "
                f"{model}{note.get(model, '')} | {m['recall@20']:.4f} | {m['recall@50']:.4f} | "
                f"{m['ndcg@100']:.4f} | {seconds[model]:.0f} |"
            )
    lines += ["", "Against the targets (VAE NDCG@100 >= 2x popularity, within 5% of EASE or better, "
              "training < 10 min on 2 cores):", ""]  # fmt: skip
    for r in results:
        vae, pop, ease = (r.metrics[m]["ndcg@100"] for m in ("Mult-VAE", "popularity", "EASE"))
        lines.append(
            f"- {r.dataset}: VAE / popularity = {vae / pop:.2f}x; VAE vs EASE {100 * (vae / ease - 1):+.1f}%; "
            f"training {r.seconds['vae_train'] / 60:.1f} min for {r.chosen['epochs_trained']} epochs including the "
            f"validation passes (median {r.seconds['vae_epoch_median']:.1f} s per training epoch)."
        )
        if r.ease_rank_ndcg:
            cut = ", ".join(f"rank {k}: {v:.4f}" for k, v in r.ease_rank_ndcg.items())
            lines.append(f"  EASE's weights cut to a rank (validation NDCG@100): {cut}.")
    return "\n".join(lines) + "\n"


def markdown_scale(report: dict[str, object], device: torch.device, threads: int) -> str:
    timed = (
        "a whole epoch"
        if report["measured_full_epoch"]
        else f"the first {report['batches_timed']} of {report['batches_per_epoch']:,} updates, epoch = median x updates"
    )
    return "\n".join(
        [
            "### Synthetic store with 1,000,000 users: epoch time and peak RSS",
            "",
            f"Run {dt.date.today()}, machine: {hardware()}, device {device}, {threads} torch thread(s)",
            f"(conditions: the run note below). Store: {report['store']}; events weighted and summed into the",
            "sparse users x items matrix chunk by chunk (no database in the loop).",
            f"{report['events']:,} events -> {report['users_with_events']:,} users with events, "
            f"{report['nonzeros']:,} non-zeros (generated in {report['generate_seconds']} s). Mult-VAE "
            f"{report['model']}, batch {report['batch_size']}; timed: {timed}.",
            "",
            "| s per update | s per epoch | peak RSS before training | peak RSS of the whole run (target < 6 GB) |",
            "| --- | --- | --- | --- |",
            f"| {report['batch_seconds_median']} | {report['epoch_seconds']} | "
            f"{report['peak_rss_gb_before_training']} GB | {report['peak_rss_gb']} GB |",
            "",
        ]
    )


def write_section(subsection: str, text: str) -> None:
    """Replace one subsection of this benchmark's section of docs/benchmarks.md; other sections untouched."""
    current = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    if SECTION not in current:
        current = current.rstrip("\n") + f"\n\n{SECTION}\n\n"
    start = current.index(SECTION)
    end = current.find("\n## ", start + len(SECTION))
    end = len(current) if end < 0 else end + 1
    body = current[start:end]
    marker = f"### {subsection}"
    if marker in body:
        sub_start = body.index(marker)
        sub_end = body.find("\n### ", sub_start + len(marker))
        sub_end = len(body) if sub_end < 0 else sub_end + 1
        body = body[:sub_start] + text + ("\n" if sub_end < len(body) else "") + body[sub_end:]
    else:
        body = body.rstrip("\n") + "\n\n" + text
    DOCS.write_text(current[:start] + body.rstrip("\n") + "\n" + ("\n" + current[end:] if end < len(current) else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("real", "scale"))
    parser.add_argument("--data", type=Path, default=Settings.from_env().shared_data_dir, help="shared data folder")
    parser.add_argument("--datasets", default="beauty,tafeng")
    parser.add_argument("--config", default="{}", help="ProfileConfig overrides as JSON")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument(
        "--ease-lambdas",
        default="50,100,200,500,1000,2000",
        help="comma-separated; each costs one items x items inverse; the best must not be at an end",
    )
    parser.add_argument(
        "--ease-ranks",
        default="",
        help="comma-separated ranks: also score the chosen EASE's weights cut to each rank (validation users)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--batches", type=int, default=200, help="scale: updates to time; 0: a whole epoch")
    parser.add_argument("--write-docs", action="store_true", help="update this section of docs/benchmarks.md")
    parser.add_argument("--note", default="", help="how the run was scheduled, written under the figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    device = select_device(Settings.from_env().device)
    if args.threads:
        torch.set_num_threads(args.threads)
    lambdas = tuple(float(v) for v in args.ease_lambdas.split(","))
    ranks = tuple(int(v) for v in args.ease_ranks.split(",") if v)
    if args.mode == "real":
        config = apply_overrides(ProfileConfig(), {"epochs": 30, **json.loads(args.config)})
        loaders = {"beauty": ("Amazon Beauty", beauty), "tafeng": ("Ta-Feng", tafeng)}
        results = []
        for key in args.datasets.split(","):
            label, loader = loaders[key]
            results.append(benchmark(label, loader(args.data), config, device, args.eval_every, lambdas, ranks))
        text = markdown_real(results, config, device, lambdas, torch.get_num_threads())
        subsection = "Amazon Beauty and Ta-Feng"
    else:
        config = apply_overrides(ProfileConfig(), {"epochs": 1, **json.loads(args.config)})
        report = scale(args.users, args.items, args.days, config, device, args.batches)
        log.info("scale: %s", json.dumps(report))
        text = markdown_scale(report, device, torch.get_num_threads())
        subsection = "Synthetic store with 1,000,000 users"
    if args.note:
        text = text.rstrip("\n") + f"\n\nRun note: {args.note}\n"
    print(text)
    if args.write_docs:
        write_section(subsection, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
