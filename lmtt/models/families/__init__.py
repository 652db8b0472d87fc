"""The model families lmtt knows: one small module per family, each declaring a ``Family``.

Adding a family is one new module here (a ``FAMILY = Family(...)`` record) listed in
``_MODULES``, plus its test. :func:`family_for` looks a Hugging Face ``model_type`` up and
refuses unknown or unsupported architectures with one line listing what is supported.
"""

from __future__ import annotations

from importlib import import_module

from lmtt.errors import UnsupportedArchitectureError
from lmtt.models.families.base import ATTENTION, MASKED_LM, ROUTES, Family
from lmtt.models.families.refused import FAMILIES as REFUSED

_MODULES = (
    "gpt2", "gpt_neo", "opt", "llama", "mistral", "qwen2", "qwen3", "gemma", "phi3", "stablelm",
    "olmo", "bloom", "gemma2", "gemma3", "olmo2", "gptj", "gpt_neox", "phi", "falcon",
    "mixtral", "qwen2_moe", "bert",
)  # fmt: skip
SUPPORTED: tuple[Family, ...] = tuple(
    import_module(f"lmtt.models.families.{name}").FAMILY for name in _MODULES
)
_BY_TYPE = {t: f for f in SUPPORTED + REFUSED for t in f.model_types}

__all__ = ["ATTENTION", "MASKED_LM", "ROUTES", "SUPPORTED", "Family", "family_for"]


def supported_text() -> str:
    """One phrase naming every supported family and what lmtt does with it."""
    routes = ", ".join(sorted(f.name for f in SUPPORTED if ROUTES in f.supports))
    views = ", ".join(sorted(f.name for f in SUPPORTED if ROUTES not in f.supports))
    return f"{routes} (everything); {views} encoders (attention views, masked LM, context search)"


def family_for(model_type: str, where: str, config: dict | None = None) -> Family:
    """The family of a ``model_type`` (and, given its ``config``, of that variant), or
    :class:`UnsupportedArchitectureError` naming ``where`` (the model), the reason and the
    supported families."""
    family = _BY_TYPE.get(model_type)
    variant = family.config_refusal(config or {}) if family is not None else ""
    if family is not None and family.supports and not variant:
        return family
    reason = variant or (
        family.refusal if family else f"architecture {model_type!r} is not supported"
    )
    raise UnsupportedArchitectureError(
        f"{where}: {reason}, which lmtt does not handle yet. Supported: {supported_text()}."
    )


def _layout(f: Family) -> str:
    if f.parallel:
        return "parallel attention and MLP"
    where = {"pre": "pre-norm", "sandwich": "norms on each write", "post": "post-norm"}
    return where[f.norm_placement] + (" encoder" if f.is_encoder else "")


def support_matrix() -> list[dict[str, str]]:
    """One row per supported family: what lmtt does with it (generated from the records)."""
    yes = "yes"
    rows = []
    for f in SUPPORTED:
        rows.append({
            "family": f.name,
            "model_type": ", ".join(f.model_types),
            "layout": _layout(f),
            "positions": f.positions,
            "routes": yes if ROUTES in f.supports else "no",
            "neurons": ("expert units" if f.moe else yes) if ROUTES in f.supports else "no",
            "attention views": ("patterns (q·k views: not yet)" if f.qk_refusal else yes)
            if ATTENTION in f.supports else "no",
            "masked LM": yes if MASKED_LM in f.supports else "no",
        })  # fmt: skip
    return rows
