"""Models: loading (hub name, folder or pip package), one record per model family, the one
capture routine and the :class:`Trace` it records. The only wing that knows TransformerLens.

The names below are imported when first used, so reading the catalog or the family records
(``lmtt models``) does not import torch or TransformerLens.
"""

__all__ = [
    "LoadedModel",
    "ModelDims",
    "ModelWeights",
    "Trace",
    "load_model",
    "resolve_device",
    "run_trace",
]
_WHERE = {
    "LoadedModel": "lmtt.models.loaded",
    "load_model": "lmtt.models.loading",
    "resolve_device": "lmtt.models.loading",
    "Trace": "lmtt.models.trace",
    "run_trace": "lmtt.models.trace",
    "ModelDims": "lmtt.models.weights",
    "ModelWeights": "lmtt.models.weights",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'lmtt.models' has no attribute {name!r}")
