"""lmtt: information-flow interpretability for transformer language models."""

from lmtt.errors import LmttError
from lmtt.models import LoadedModel, Trace, load_model, run_trace

__version__ = "0.1.0"
__all__ = ["LmttError", "LoadedModel", "Trace", "__version__", "load_model", "run_trace"]
