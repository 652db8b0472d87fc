"""Error types. Every message says what went wrong *and* what to do about it."""

from __future__ import annotations


class LmttError(Exception):
    """Base class for every error lmtt raises on purpose (bad input, missing files, ...)."""


class ModelNotFoundError(LmttError):
    """A model name is neither a known model, a local folder, nor a usable hub name."""


class ModelNotCachedError(ModelNotFoundError):
    """A hub model is not in the local cache and the hub cannot be reached."""


class ModelLoadError(LmttError):
    """A model folder exists but cannot be loaded (missing or corrupted files)."""


class UnsupportedArchitectureError(LmttError):
    """The model's architecture is one the residual decomposition does not handle."""


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
    """Bad route settings (target position, threshold)."""


class EmptyRoutesError(RouteError):
    """No edge into the prediction survives the threshold."""

    def __init__(self, message: str, max_threshold: float):
        super().__init__(message)
        self.max_threshold = max_threshold


class NeuronIndexError(LmttError):
    """A neuron-index job, folder or query problem (foreign folder, neuron out of range, ...)."""
