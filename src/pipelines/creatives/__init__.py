"""Ad creatives with a class-conditional GAN: training, quality gate, scoring and banner composition.

The task's recipe is `pipelines.creatives.task.CreativesRecipe`; this package's top level imports nothing heavy
so that the DAG file can import the config without torch.
"""

from pipelines.creatives.config import MODEL_NAME, CreativesConfig

__all__ = ["MODEL_NAME", "CreativesConfig"]
