"""One typed settings object, built from the environment.

Every knob a deployment turns lives here with its environment variable, so the README's configuration
table and the code cannot drift apart: `ENV_VARS` is the table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = PROJECT_ROOT / ".local"
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# name -> (settings field, help). The README's configuration table mirrors this mapping.
ENV_VARS: dict[str, tuple[str, str]] = {
    "PIPELINES_WAREHOUSE_URL": (
        "warehouse_url",
        "SQLAlchemy URL of the marketing warehouse; unset: the embedded PostgreSQL",
    ),
    "PIPELINES_STATE_DIR": ("state_dir", "where the embedded database, Airflow home and artifacts live"),
    "PIPELINES_ARTIFACTS_DIR": (
        "artifacts_dir",
        "model artifacts, Data Docs, plots; default STATE_DIR/artifacts",
    ),
    "PIPELINES_EMBEDDED_PG_PORT": ("embedded_port", "loopback TCP port of the embedded PostgreSQL"),
    "PIPELINES_GPU_POOL_SLOTS": ("gpu_pool_slots", "slots of the Airflow pool `gpu` created by set-up"),
    "PIPELINES_FASHION_MNIST_DIR": (
        "fashion_mnist_dir",
        "folder with the Fashion-MNIST *.gz files; default where `make images` put them",
    ),
    "PIPELINES_SHARED_DATA_DIR": ("shared_data_dir", "real datasets for loaders and benchmarks"),
    "PIPELINES_DEVICE": ("device", "torch device for model tasks: auto, cpu or cuda[:N]"),
    "PIPELINES_TORCH_THREADS": (
        "torch_threads",
        "torch CPU threads per task; default the cores divided by the model tasks a worker runs at once",
    ),
    "PIPELINES_SCORE_SHARDS": (
        "score_shards",
        "user shards each model task scores and writes as mapped task instances (docs/scaling.md)",
    ),
    "PIPELINES_API_HOST": (
        "api_host",
        "address the local Airflow API server and UI listen on; 0.0.0.0 exposes them to the network",
    ),
    "PIPELINES_PROFILE": (
        "profile",
        "production, or demo: the demo-sized model settings of pipelines.demo (make demo/airflow set it)",
    ),
    "PIPELINES_AUTO_APPROVE_CREATIVES": (
        "auto_approve_creatives",
        "simulated store only: approve each day's creatives without a reviewer (true/false; default: true "
        "under the demo profile, false otherwise)",
    ),
}
PROFILES = ("production", "demo")
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class Settings:
    """Deployment settings. Build with `Settings.from_env()`; tests build it directly."""

    warehouse_url: str | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    artifacts_dir: Path | None = None
    embedded_port: int = 55432
    gpu_pool_slots: int = 1
    fashion_mnist_dir: Path | None = None
    shared_data_dir: Path = PROJECT_ROOT.parent / "shared" / "data"
    device: str = "auto"
    torch_threads: int | None = None
    score_shards: int = 1
    api_host: str = "127.0.0.1"
    profile: str = "production"
    auto_approve_creatives: bool | None = None  # None: on under the demo profile only

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"PIPELINES_PROFILE must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if not 1 <= self.embedded_port <= 65535:
            raise ConfigError(f"PIPELINES_EMBEDDED_PG_PORT must be a TCP port, got {self.embedded_port}")
        if self.gpu_pool_slots < 1:
            raise ConfigError(f"PIPELINES_GPU_POOL_SLOTS must be at least 1, got {self.gpu_pool_slots}")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(f"PIPELINES_DEVICE must be auto, cpu or cuda[:N], got {self.device!r}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ConfigError(f"PIPELINES_TORCH_THREADS must be at least 1, got {self.torch_threads}")
        if not 1 <= self.score_shards <= 1024:
            raise ConfigError(f"PIPELINES_SCORE_SHARDS must be between 1 and 1024, got {self.score_shards}")
        if not self.api_host.strip():
            raise ConfigError("PIPELINES_API_HOST must be an address such as 127.0.0.1 or 0.0.0.0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `PIPELINES_*` variables; an unknown one is an error (a typo must not pass silently)."""
        env = os.environ if environ is None else environ
        unknown = sorted(k for k in env if k.startswith("PIPELINES_") and k not in ENV_VARS)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(ENV_VARS)}")
        values: dict[str, object] = {}
        for name, (attr, _) in ENV_VARS.items():
            raw = env.get(name, "").strip()
            if not raw:
                continue
            if attr in ("embedded_port", "gpu_pool_slots", "torch_threads", "score_shards"):
                try:
                    values[attr] = int(raw)
                except ValueError:
                    raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
            elif attr == "auto_approve_creatives":
                if raw.lower() not in BOOLEANS:
                    raise ConfigError(f"{name} must be true or false, got {raw!r}")
                values[attr] = BOOLEANS[raw.lower()]
            elif attr in ("state_dir", "artifacts_dir", "fashion_mnist_dir", "shared_data_dir"):
                values[attr] = Path(raw).expanduser().resolve()
            else:
                values[attr] = raw
        return cls(**values)  # type: ignore[arg-type]

    @property
    def approves_creatives_automatically(self) -> bool:
        """Whether the day's creatives skip the reviewer: the simulated store's unattended loop, never production
        unless PIPELINES_AUTO_APPROVE_CREATIVES says so."""
        if self.auto_approve_creatives is not None:
            return self.auto_approve_creatives
        return self.profile == "demo"

    @property
    def artifacts(self) -> Path:
        """Folder for model artifacts, Data Docs and plots."""
        return self.artifacts_dir or self.state_dir / "artifacts"

    @property
    def pgdata(self) -> Path:
        return self.state_dir / "pgdata"

    @property
    def local_fashion_mnist_dir(self) -> Path:
        return self.state_dir / "datasets" / "fashion-mnist"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def airflow_passwords_file(self) -> Path:
        """The simple auth manager's generated passwords (the admin's is printed by `make airflow`)."""
        return self.airflow_home / "simple_auth_manager_passwords.json.generated"

    @property
    def standalone_pid_file(self) -> Path:
        """The process group of `make airflow`, for `make stop`."""
        return self.state_dir / "airflow-standalone.pid"

    def fashion_mnist_path(self) -> Path | None:
        """The Fashion-MNIST folder to use, or None when the images are not installed anywhere known.

        Looked for where it was configured, where `make images` unpacks Debian's `dataset-fashion-mnist`
        without root (STATE_DIR/datasets/fashion-mnist, and the project's default state folder, which stacks
        with a state folder of their own, such as the tests', also use), then where that package installs it.
        """
        candidates = (
            self.fashion_mnist_dir,
            self.local_fashion_mnist_dir,
            DEFAULT_STATE_DIR / "datasets" / "fashion-mnist",
            DEBIAN_FASHION_MNIST_DIR,
        )
        for candidate in candidates:
            if candidate is not None and (candidate / "train-images-idx3-ubyte.gz").exists():
                return candidate
        return None
