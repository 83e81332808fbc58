"""User-profile VAE: Mult-VAE profiles, stable segments and category interests -> user_profiles, segments.

Importing this package is cheap: the task's recipe is `pipelines.profiles.task.ProfileRecipe`.
"""

from pipelines.profiles.config import MODEL_NAME, ProfileConfig

__all__ = ["MODEL_NAME", "ProfileConfig"]
