"""Benchmark: the ad-creative conditional GAN on Fashion-MNIST, quality against the real-vs-real floor.

Protocol: the evaluation classifier trains on the 60,000 training images and reports its accuracy on the
10,000 test images; the GAN trains on the training images; quality figures use `eval_samples` test images
as the reference, the same number of generated images with the reference's labels, and the same number of
training images for the real-vs-real floor (pipelines.creatives.evaluate: the task's own protocol).

    .venv/bin/python benchmarks/bench_creatives.py \
        --threads 2 --seed 1 --config '{"diffaugment": "", "train_steps": 7000}' --write-docs

(7000 steps from a cold start: the run docs/benchmarks.md reports; the task itself trains 3000 steps a day
on top of its champion.)

On 2 quiet cores OpenMP's default wait policy (spin briefly, then sleep) is the one to time: passive
waits (`OMP_WAIT_POLICY=PASSIVE`, which the local Airflow stack sets for processes that share cores)
made a 64/32 bfloat16 step take 240-265 ms against 181 ms, so run it from a shell where the variable is
unset. The report names the policy it ran under.

`--evaluate-at 4000,5000` also evaluates the EMA generator in full at those steps of the run (the batches
and the weights up to a step do not depend on how long the run goes on), so one run gives the quality a
shorter run would have reached. Probes and these evaluations are left out of the training time.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from common import hardware
from pipelines.compute import select_device
from pipelines.config import apply_overrides
from pipelines.creatives.classifier import ClassifierSpec, accuracy, predict, train_classifier
from pipelines.creatives.config import CreativesConfig
from pipelines.creatives.evaluate import evaluate, sample_generator
from pipelines.creatives.gan import GanSpec
from pipelines.creatives.metrics import frechet_distance, precision_recall, within_class_spread
from pipelines.creatives.plots import plot_training_curves
from pipelines.creatives.select import to_uint8
from pipelines.creatives.train import new_state, run_key, train_gan, uses_bf16
from pipelines.settings import PROJECT_ROOT, Settings

log = logging.getLogger("bench_creatives")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SECTION = "## GAN ad creatives (conditional GAN on Fashion-MNIST)"


def read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path) as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)


def load_fashion_mnist(folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, test images, test labels); images [n, 1, 28, 28] in [-1, 1]."""

    def images(name: str) -> torch.Tensor:
        pixels = read_idx(folder / name, 16).reshape(-1, 1, 28, 28)  # [n, 1, 28, 28]
        return torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0)

    def labels(name: str) -> torch.Tensor:
        return torch.from_numpy(read_idx(folder / name, 8).astype(np.int64))

    return (
        images("train-images-idx3-ubyte.gz"),
        labels("train-labels-idx1-ubyte.gz"),
        images("t10k-images-idx3-ubyte.gz"),
        labels("t10k-labels-idx1-ubyte.gz"),
    )


def sample_grid(generator: torch.nn.Module, path: Path, per_class: int = 10) -> None:
    """A 10 x 10 grid: one row per category, from a fixed seed."""
    from PIL import Image

    labels = torch.arange(len(CLASSES)).repeat_interleave(per_class)
    pixels = to_uint8(sample_generator(generator, labels, seed=0, device=torch.device("cpu")))  # [n, 1, 28, 28]
    grid = pixels.reshape(len(CLASSES), per_class, 28, 28).transpose(0, 2, 1, 3).reshape(len(CLASSES) * 28, -1)
    Image.fromarray(grid, mode="L").resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.Resampling.NEAREST).save(path)


def within_class_spreads(
    generators: dict[str, torch.nn.Module],
    classifier: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    n: int = 2000,
) -> dict[str, float]:
    """Within-class spread of classifier features: real images and each generator, same labels and count."""
    index = torch.randperm(len(images), generator=torch.Generator().manual_seed(5))[:n]
    spreads = {"real": within_class_spread(predict(classifier, images[index], device)[1], labels[index])}
    for name, generator in generators.items():
        fake = sample_generator(generator, labels[index], seed=5, device=device)
        spreads[name] = within_class_spread(predict(classifier, fake, device)[1], labels[index])
    return spreads


def write_section(docs: Path, body: str) -> None:
    """Replace this benchmark's own section of docs/benchmarks.md (re-read right before writing)."""
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    section = f"{SECTION}\n\n{body.strip()}\n"
    if SECTION in text:
        start = text.index(SECTION)
        following = text.find("\n## ", start + len(SECTION))
        end = len(text) if following == -1 else following + 1
        text = text[:start] + section + ("\n" + text[end:] if following != -1 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    docs.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="shared data folder (default from settings)")
    parser.add_argument("--config", default="{}", help="JSON overrides of CreativesConfig")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    # The classifier and the evaluation samples keep their own fixed seeds, so runs of different GAN seeds
    # are measured with the same yardstick.
    parser.add_argument("--seed", type=int, default=1, help="seed of the GAN's weights and batches")
    parser.add_argument("--probe-every", type=int, default=500, help="steps between quality probes (curves)")
    parser.add_argument(
        "--evaluate-at",
        default="",
        help="comma-separated steps (multiples of --probe-every) at which the EMA generator also gets the full "
        "evaluation: one run then shows what a shorter run of the same recipe would have reached",
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for curves and samples")
    parser.add_argument("--write-docs", action="store_true", help="write the figures into docs/benchmarks.md")
    args = parser.parse_args()
    evaluate_at = {int(step) for step in args.evaluate_at.split(",") if step.strip()}
    if any(step % args.probe_every for step in evaluate_at):
        parser.error(f"--evaluate-at steps must be multiples of --probe-every ({args.probe_every})")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    settings = Settings.from_env()
    config = apply_overrides(CreativesConfig(), json.loads(args.config))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(settings.device)
    folder = (args.data_dir or settings.shared_data_dir) / "fashion-mnist"
    out = args.out or settings.artifacts / "benchmarks" / "creatives"
    out.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = load_fashion_mnist(folder)
    log.info("Fashion-MNIST: %d training, %d test images from %s", len(x_train), len(x_test), folder)

    started = time.perf_counter()
    spec = ClassifierSpec(len(CLASSES), channels=config.classifier_channels)
    classifier = train_classifier(
        x_train,
        y_train,
        spec,
        epochs=config.classifier_epochs,
        batch_size=config.classifier_batch_size,
        lr=config.classifier_lr,
        seed=1,
        device=device,
    )
    classifier_seconds = time.perf_counter() - started
    held_accuracy = accuracy(classifier, x_test, y_test, device)
    log.info("classifier: %.4f held-out accuracy after %.0f s", held_accuracy, classifier_seconds)

    probe_gen = torch.Generator().manual_seed(7)
    probe_index = torch.randperm(len(x_test), generator=probe_gen)[:1000]
    _, probe_ref = predict(classifier, x_test[probe_index], device)

    def quality(generator: torch.nn.Module) -> dict:
        return evaluate(
            generator,
            classifier,
            (x_train, y_train),
            (x_test, y_test),
            eval_samples=config.eval_samples,
            seed=11,
            device=device,
        )

    evaluations: dict[int, dict] = {}  # step -> the full evaluation of the EMA generator at that step

    def probe(ema: torch.nn.Module) -> dict[str, float]:
        fake = sample_generator(ema, y_test[probe_index], seed=1, device=device)
        probs, feats = predict(classifier, fake, device)
        figures = {
            "conditional_accuracy": float((probs.argmax(1) == y_test[probe_index]).float().mean()),
            "frechet_div10": frechet_distance(probe_ref, feats) / 10,
            "recall": precision_recall(probe_ref, feats)[1],
        }
        log.info("EMA generator probe (1000 test labels): %s", json.dumps(figures))
        if state.step in evaluate_at:
            evaluations[state.step] = quality(ema)
            log.info("full evaluation at step %d: %s", state.step, json.dumps(evaluations[state.step]))
        return figures

    gan_spec = GanSpec.from_task_config(config, len(CLASSES))
    state = new_state(gan_spec, config, seed=args.seed, device=device)
    checkpoint = out / f"bench-checkpoint-{int(time.time())}.pt"
    stats = train_gan(
        state,
        x_train,
        y_train,
        config,
        seed=args.seed,
        device=device,
        checkpoint=checkpoint,
        key=run_key(gan_spec, config, args.seed, "fashion-mnist", None),
        probe=probe,
        probe_every=args.probe_every,
    )
    checkpoint.unlink(missing_ok=True)

    metrics = quality(state.ema)
    total = time.perf_counter() - started - stats["probe_seconds"]  # probes measure, they do not train
    # Diagnostics outside the timed task: the live generator beside the EMA one, and within-class spread.
    raw_metrics = quality(state.generator)
    spread = within_class_spreads({"ema": state.ema, "raw": state.generator}, classifier, x_test, y_test, device)
    plot_training_curves(state.history, out / "training_curves.png", "creative GAN on Fashion-MNIST")
    sample_grid(state.ema.cpu(), out / "samples.png")
    result = {
        "config": dataclasses.asdict(config),
        "seed": args.seed,
        "bf16": uses_bf16(config, device),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "train": stats,
        "metrics": metrics,
        "raw_generator_metrics": raw_metrics,
        "within_class_spread": spread,
        "classifier_seconds": classifier_seconds,
        "total_seconds": total,
        "evaluations": evaluations,
        "history": state.history,  # losses and probes, to redraw or quote the curves later
    }
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    log.info("result: %s", json.dumps(result, default=str))
    if args.write_docs:
        write_section(PROJECT_ROOT / "docs" / "benchmarks.md", report(result, args, device, held_accuracy))


def report(result: dict, args: argparse.Namespace, device: torch.device, held_accuracy: float) -> str:
    m, t, c = result["metrics"], result["train"], result["config"]
    r, sp = result["raw_generator_metrics"], result["within_class_spread"]
    threads = args.threads or torch.get_num_threads()
    wait = result["omp_wait_policy"]
    where = hardware() if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})"
    checks = [
        ("conditional accuracy >= classifier held-out accuracy", m["conditional_accuracy"] >= held_accuracy),
        ("classifier Frechet distance within 3x of the floor", m["frechet"] <= 3 * m["floor_frechet"]),
        ("training under 30 minutes", result["total_seconds"] < 1800),
        (f"recall >= {c['min_recall']} (the task's diversity gate)", m["recall"] >= c["min_recall"]),
    ]
    lines = [
        f"Measured {dt.date.today():%Y-%m-%d} on {where}, torch {torch.__version__}, {threads} thread(s), "
        f"Python {platform.python_version()}, OpenMP wait policy {wait or 'default (unset)'}. Command: "
        f"`{f'OMP_WAIT_POLICY={wait} ' if wait else ''}.venv/bin/python benchmarks/bench_creatives.py --write-docs "
        f"--threads {args.threads} --seed {args.seed} "
        f"--config '{args.config}'`.",
        "",
        "Dataset: Fashion-MNIST (`../shared/data/fashion-mnist`), 60,000 training and 10,000 test images, 10 "
        "categories. Protocol: the evaluation classifier (2 conv + 128-d feature layer) trains on the training "
        "images; generated images are compared in its feature space with "
        f"{int(m['eval_samples'])} test images (same labels, same count); the floor is {int(m['eval_samples'])} "
        "real training images against the same test images. Classifier Frechet distance is not FID (no "
        "Inception weights).",
        "",
        f"Model: generator {c['g_channels']}-channel base (conditional BN), projection discriminator "
        f"{c['d_channels']}-channel base with spectral norm and class-wise minibatch stddev "
        f"{'on' if c['minibatch_stddev'] else 'off'}, z {c['z_dim']}, "
        f"hinge loss, EMA decay (1 + s) / (10 + s) at step s, capped at {c['ema_decay']}, "
        f"DiffAugment `{c['diffaugment']}`, consistency regularisation weight {c['consistency_weight']}, "
        f"auxiliary class loss weight {c.get('class_loss_weight', 0.0)}, "
        f"batch {c['batch_size']}, Adam {c['lr_g']}/{c['lr_d']} "
        f"betas ({c['beta1']}, {c['beta2']}), forward passes in {'bfloat16' if result['bf16'] else 'float32'}.",
        "",
        "| figure | generated (EMA generator) | generated (live generator) | real-vs-real floor |",
        "| --- | --- | --- | --- |",
        f"| conditional accuracy | {m['conditional_accuracy']:.4f} | {r['conditional_accuracy']:.4f} | "
        f"{held_accuracy:.4f} (classifier on test) |",
        f"| classifier Frechet distance | {m['frechet']:.3f} | {r['frechet']:.3f} | {m['floor_frechet']:.3f} |",
        f"| KID (x1000) | {1000 * m['kid']:.2f} | {1000 * r['kid']:.2f} | {1000 * m['floor_kid']:.2f} |",
        f"| precision (k=3) | {m['precision']:.3f} | {r['precision']:.3f} | {m['floor_precision']:.3f} |",
        f"| recall (k=3) | {m['recall']:.3f} | {r['recall']:.3f} | {m['floor_recall']:.3f} |",
        f"| within-class spread (features) | {sp['ema']:.2f} | {sp['raw']:.2f} | {sp['real']:.2f} (test images) |",
        "",
        "The task ships the EMA generator. The live generator's figures and the within-class spread (mean "
        "classifier-feature distance between two images of the same class, 2000 test labels) are diagnostics "
        "computed after the timed run: a generator that ignores its noise has a spread near 0.",
        "",
        f"Training: {int(t['steps'])} steps of {c['batch_size']} = {t['epochs']:.2f} epochs of 60,000 images, "
        f"{t['seconds']:.0f} s ({t['seconds_per_epoch']:.0f} s per epoch, {t['images_per_second']:.0f} images/s); "
        f"classifier {c['classifier_epochs']} epochs in {result['classifier_seconds']:.0f} s; total with "
        f"evaluation {result['total_seconds'] / 60:.1f} min.",
        "",
        "Targets: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks) + ".",
    ]
    return "\n".join(lines + earlier_steps(result))


def earlier_steps(result: dict) -> list[str]:
    """The table of the full evaluations made during the run (`--evaluate-at`), with the final one below them."""
    if not result.get("evaluations"):
        return []
    per_step = result["train"]["seconds"] / result["train"]["steps"]
    final = int(result["train"]["steps"])
    rows = sorted((int(step), m) for step, m in result["evaluations"].items() if int(step) != final)
    rows.append((final, result["metrics"]))  # the final step once, from the run's own evaluation
    lines = [
        "",
        "The same run's EMA generator, fully evaluated as above at earlier steps (what a shorter run of this recipe "
        "would have shipped; its training time is the step count at this run's mean rate):",
        "",
        "| step | conditional accuracy | Frechet (x floor) | KID (x1000) | precision / recall | training time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for step, m in rows:
        ratio = m["frechet"] / m["floor_frechet"]
        lines.append(
            f"| {step} | {m['conditional_accuracy']:.4f} | {m['frechet']:.3f} ({ratio:.2f}x)"
            f" | {1000 * m['kid']:.1f} | {m['precision']:.3f} / {m['recall']:.3f} | {step * per_step / 60:.1f} min |"
        )
    return lines


if __name__ == "__main__":
    main()
