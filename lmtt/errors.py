"""Every error type lmtt raises on purpose. Each message says what went wrong *and* what to do.

Two kinds are shared by every wing: :class:`NotCapturedError` (a trace lacks an activation kind)
and :class:`OutOfRangeError` (a layer, head, neuron or position outside its range; the message
names the valid range). :func:`check_index` raises the latter the same way everywhere.
"""

from __future__ import annotations


class LmttError(Exception):
    """Base class for every error lmtt raises on purpose (bad input, missing files, ...)."""


class OutOfRangeError(LmttError, IndexError):
    """A layer, head, neuron or position outside its range (the message names the range)."""


class NotCapturedError(LmttError, KeyError):
    """A trace was asked for an activation kind it did not capture."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def check_index(what: str, value: int, size: int, negative: bool = False) -> int:
    """``value`` as an index into ``size`` items, or :class:`OutOfRangeError` naming the range.

    ``what`` is the capitalised name ("Layer", "Head", "Token position"); with ``negative``,
    -size..-1 count from the end and are returned as 0..size-1.
    """
    low = -size if negative else 0
    if not low <= int(value) < size:
        tail = " (or negative, counting from the end)" if negative else ""
        raise OutOfRangeError(f"{what} {value} is out of range: 0..{size - 1}{tail}.")
    return int(value) % size if negative else int(value)


class ModelNotFoundError(LmttError):
    """A model name is neither a known model, a local folder, nor a usable hub name."""


class ModelNotCachedError(ModelNotFoundError):
    """A hub model is not in the local cache and the hub cannot be reached."""


class ModelLoadError(LmttError):
    """A model folder exists but cannot be loaded (missing or corrupted files)."""


class UnsupportedArchitectureError(LmttError):
    """The model's architecture (or this use of it) is one lmtt does not handle."""


class NoMlmHeadError(LmttError):
    """The model has no masked-LM head (a decoder, or an encoder saved without one)."""


class DeviceError(LmttError):
    """The requested device or dtype does not exist on this machine."""


class PromptError(LmttError):
    """The prompt cannot be traced (empty, too long, ...)."""


class NonFiniteActivationError(LmttError):
    """The forward pass produced NaN or infinite activations."""

    def __init__(self, message: str, layer: int | None = None):
        super().__init__(message)
        self.layer = layer


class RouteError(LmttError):
    """Bad route settings (threshold, ...)."""


class EmptyRoutesError(RouteError):
    """No edge into the prediction survives the threshold."""

    def __init__(self, message: str, max_threshold: float):
        super().__init__(message)
        self.max_threshold = max_threshold


class AttentionViewError(LmttError):
    """Bad settings for an attention view (projection method, empty input, ...)."""


class CorpusFormatError(LmttError):
    """A corpus file is malformed or of an unknown format."""


class IndexFolderError(LmttError):
    """An index folder problem shared by every index kind (manifest, schema version)."""


class NeuronIndexError(IndexFolderError):
    """A neuron-index job, folder or query problem (foreign folder, bad settings, ...)."""


class ContextIndexError(IndexFolderError):
    """A context-index folder or query problem."""


class InterventionError(LmttError):
    """An intervention, metric or verification that cannot be run as asked."""
