"""Models: loading (hub name, folder or pip package), one record per model family, the one
capture routine and the :class:`Trace` it records. The only wing that knows TransformerLens.
"""

from lmtt.models.loaded import LoadedModel
from lmtt.models.loading import load_model, resolve_device
from lmtt.models.trace import Trace, run_trace
from lmtt.models.weights import ModelDims, ModelWeights

__all__ = [
    "LoadedModel",
    "ModelDims",
    "ModelWeights",
    "Trace",
    "load_model",
    "resolve_device",
    "run_trace",
]
