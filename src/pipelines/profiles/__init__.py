"""User-profile VAE: Mult-VAE profiles, stable segments and category interests -> user_profiles, segments.

The task entry point is `run`; importing this package is cheap (torch and pandas load inside `run`).
"""

from pipelines.profiles.config import MODEL_NAME, ProfileConfig
from pipelines.profiles.task import run

__all__ = ["MODEL_NAME", "ProfileConfig", "run"]
