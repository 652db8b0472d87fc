"""lmtt: information-flow interpretability for transformer language models.

The model-facing names (``load_model``, ``run_trace``, ``LoadedModel``, ``Trace``) are imported
when first used, so ``import lmtt`` (and the command line's start) does not import torch.
"""

from lmtt.errors import LmttError

__version__ = "0.1.0"
__all__ = ["LmttError", "LoadedModel", "Trace", "__version__", "load_model", "run_trace"]
_LAZY = ("LoadedModel", "Trace", "load_model", "run_trace")


def __getattr__(name: str):
    if name in _LAZY:
        from lmtt import models

        return getattr(models, name)
    raise AttributeError(f"module 'lmtt' has no attribute {name!r}")
