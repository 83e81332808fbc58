"""Settings from the environment and typed config overrides: typos and bad values fail loudly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from pipelines import settings as settings_module
from pipelines.config import apply_overrides
from pipelines.errors import ConfigError
from pipelines.settings import Settings


def test_settings_read_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"PIPELINES_STATE_DIR": str(tmp_path), "PIPELINES_GPU_POOL_SLOTS": "3", "PIPELINES_PROFILE": "demo"}
    )
    assert settings.state_dir == tmp_path and settings.gpu_pool_slots == 3 and settings.profile == "demo"
    assert settings.artifacts == tmp_path / "artifacts" and settings.pgdata == tmp_path / "pgdata"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PIPELINES_GPU_POOL_SLOT": "2"}, "unknown setting.*PIPELINES_GPU_POOL_SLOT"),
        ({"PIPELINES_GPU_POOL_SLOTS": "two"}, "must be an integer"),
        ({"PIPELINES_GPU_POOL_SLOTS": "0"}, "at least 1"),
        ({"PIPELINES_DEVICE": "tpu"}, "auto, cpu or cuda"),
        ({"PIPELINES_PROFILE": "fast"}, "production, demo"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_fashion_mnist_path_is_none_when_images_are_missing(tmp_path: Path) -> None:
    settings = Settings(fashion_mnist_dir=tmp_path)
    found = settings.fashion_mnist_path()
    assert found is None or found != tmp_path  # only a copy found elsewhere may stand in


def test_fashion_mnist_path_finds_the_copy_make_images_unpacks(tmp_path: Path) -> None:
    local = tmp_path / "datasets" / "fashion-mnist"
    local.mkdir(parents=True)
    (local / "train-images-idx3-ubyte.gz").write_bytes(b"")
    assert Settings(state_dir=tmp_path).fashion_mnist_path() == local
    configured = tmp_path / "mine"
    configured.mkdir()
    (configured / "train-images-idx3-ubyte.gz").write_bytes(b"")
    assert Settings(state_dir=tmp_path, fashion_mnist_dir=configured).fashion_mnist_path() == configured


def test_a_stack_with_its_own_state_folder_finds_the_images_make_images_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DAG tests' stacks have a temporary state folder; `make images` fills the project's default one."""
    project_state = tmp_path / "project-state"
    fetched = project_state / "datasets" / "fashion-mnist"
    fetched.mkdir(parents=True)
    (fetched / "train-images-idx3-ubyte.gz").write_bytes(b"")
    monkeypatch.setattr(settings_module, "DEFAULT_STATE_DIR", project_state)
    monkeypatch.setattr(settings_module, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-system-copy")
    assert Settings(state_dir=tmp_path / "test-state").fashion_mnist_path() == fetched


@dataclass(frozen=True)
class _Config:
    epochs: int = 10
    lr: float = 1e-3
    loss: Literal["full", "sampled"] = "full"
    tags: tuple[str, ...] = ()
    cap: int | None = None


def test_overrides_apply_with_coercion() -> None:
    config = apply_overrides(_Config(), {"epochs": 3, "lr": 1, "loss": "sampled", "tags": ["a"], "cap": None})
    assert config == _Config(epochs=3, lr=1.0, loss="sampled", tags=("a",), cap=None)
    assert apply_overrides(_Config(), None) == _Config()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epoch": 3}, "unknown _Config setting.*epoch"),
        ({"epochs": "3"}, "epochs must be an integer"),
        ({"epochs": True}, "epochs must be an integer"),
        ({"loss": "bpr"}, "loss must be one of"),
        ({"lr": "fast"}, "lr must be a number"),
    ],
)
def test_bad_overrides_are_errors(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(_Config(), overrides)
