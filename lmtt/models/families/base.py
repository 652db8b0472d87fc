"""The record every model family declares: what lmtt needs to know about its architecture.

A :class:`Family` is data, not code: the hook names of each activation kind, the block layout,
where the norms sit, which biases exist, whether the MLP is gated, the rotary style, encoder or
decoder, and what lmtt supports for it. The one capture routine (``lmtt.models.capture``) and
the loader read these fields; nothing outside ``lmtt/models`` needs to know a family by name.

Block layouts (DESIGN.md sections 1 and 1b; the identities are in docs/decomposition.md):

- ``sequential`` with ``pre`` norms: ``mid = x + attn(N1 x)``, ``out = mid + mlp(N2 mid)``.
- ``sequential`` with ``sandwich`` norms (Gemma 2/3; OLMo 2 has the post norms only): each
  block's write passes through its own norm before it is added, ``mid = x + P1(attn)``.
- ``sequential`` with ``post`` norms (BERT): ``mid = P1(x + attn)``, ``out = P2(mid + mlp)``.
- ``parallel`` (GPT-J, GPT-NeoX, Phi, Falcon): ``out = x + attn(N1 x) + mlp(N2 x)``.

With each norm's scale frozen at its traced value every layout is affine in its parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# Activation kind -> TransformerLens (TransformerBridge) hook name, shared by most families.
STANDARD_HOOKS = MappingProxyType(
    {
        "resid_pre": "blocks.{layer}.hook_resid_pre",
        "resid_mid": "blocks.{layer}.hook_resid_mid",
        "resid_post": "blocks.{layer}.hook_resid_post",
        "pattern": "blocks.{layer}.attn.hook_pattern",
        "q": "blocks.{layer}.attn.hook_q",
        "k": "blocks.{layer}.attn.hook_k",
        "v": "blocks.{layer}.attn.hook_v",
        "mlp_post": "blocks.{layer}.mlp.hook_post",
        "ln1_scale": "blocks.{layer}.ln1.hook_scale",
        "ln2_scale": "blocks.{layer}.ln2.hook_scale",
        "final_scale": "ln_final.hook_scale",
    }
)
# Rotary families: the bridge's hooks after the rotation (the scores use rotated q and k).
ROTARY_HOOKS = MappingProxyType(
    STANDARD_HOOKS | {"q": "blocks.{layer}.attn.hook_rot_q", "k": "blocks.{layer}.attn.hook_rot_k"}
)
# Parallel blocks: no residual between attention and MLP; the two writes are read apart.
_PARALLEL = {"attn_out": "blocks.{layer}.hook_attn_out", "mlp_out": "blocks.{layer}.hook_mlp_out"}
PARALLEL_HOOKS = MappingProxyType(
    {k: v for k, v in ROTARY_HOOKS.items() if k not in ("resid_mid", "ln2_scale")} | _PARALLEL
)
# Sandwich (and post-only) norms: the scales of the norms each block's write passes through.
_OUT_SCALES = {
    "attn_out_scale": "blocks.{layer}.ln1_post.hook_scale",
    "mlp_out_scale": "blocks.{layer}.ln2_post.hook_scale",
    "attn_added": "blocks.{layer}.ln1_post.hook_out",  # what the residual adds: the normed write
}
SANDWICH_HOOKS = MappingProxyType(ROTARY_HOOKS | _OUT_SCALES)

# Where interventions (lmtt.models.intervene) edit, unless a family names its own: one head's
# output before W_O ("z"), and each block's write as its module returns it (before any post
# norm). Post-norm records add "mid_sum"/"post_sum": the sums their norms read. The bridge's
# resid_mid hook feeds the MLP's norm only (the block adds the unedited sum), so a skip is
# removed at resid_mid and at resid_post together (lmtt.causal.removal).
EDIT_HOOKS = MappingProxyType(
    {
        "z": "blocks.{layer}.attn.hook_z",
        "attn_write": "blocks.{layer}.attn.hook_out",
        "mlp_write": "blocks.{layer}.mlp.hook_out",
        "attn_added": "blocks.{layer}.attn.hook_out",  # the term the residual adds (read only)
        "unembed_in": "unembed.hook_in",  # what the unembedding reads, per position
    }
)

# The Llama block (pre-RMSNorm, rotary, gated MLP) and the sandwich block: presets for records.
LLAMA_LIKE = MappingProxyType(
    dict(norm="rmsnorm", gated_mlp=True, positions="rotary", hooks=ROTARY_HOOKS)
)
SANDWICH_LIKE = MappingProxyType(
    LLAMA_LIKE
    | dict(norm_placement="sandwich", out_norms=("ln1_post", "ln2_post"), hooks=SANDWICH_HOOKS)
)

# What lmtt can do with a model. "routes" is the information-flow graph, logit lens and
# component views (lmtt.flow); "attention" the classic attention views and context search.
ROUTES, ATTENTION, MASKED_LM = "routes", "attention", "masked_lm"
VIEW_KINDS = frozenset(("resid_pre", "resid_post", "pattern", "q", "k"))
# Norms on the queries and keys (Qwen3: per head; OLMo 2: over all heads): their scales, which
# the score decomposition freezes (lmtt.flow.score).
QK_NORM_HOOKS = MappingProxyType(
    {
        "q_norm_scale": "blocks.{layer}.attn.q_norm.hook_scale",
        "k_norm_scale": "blocks.{layer}.attn.k_norm.hook_scale",
    }
)
# An expert MLP (lmtt.models.moe): the MLP's input and the router's choices, from which the
# expert scalars are computed, and a family record's fields for one on the Llama block
MOE_HOOKS = {
    "mlp_in": "blocks.{layer}.mlp.hook_in",
    "expert_indices": "blocks.{layer}.mlp.hook_expert_indices",
    "expert_weights": "blocks.{layer}.mlp.hook_expert_weights",
}
MOE_LIKE = {
    "moe": True,
    "hooks": MappingProxyType(
        {k: v for k, v in ROTARY_HOOKS.items() if k != "mlp_post"} | MOE_HOOKS
    ),
}
_NORM_SCALES = frozenset(("ln1_scale", "ln2_scale", "final_scale"))


@dataclass(frozen=True)
class Family:
    """One model family as lmtt sees it (see the module docstring)."""

    name: str  # shown to users: "GPT-2"
    model_types: tuple[str, ...]  # Hugging Face config.json model_type values
    role: str = "decoder"  # "decoder" (causal) or "encoder" (attends both ways)
    layout: str = "sequential"  # "sequential" (attention, then MLP) or "parallel"
    norm: str = "layernorm"  # "layernorm" (centres) or "rmsnorm"
    norm_placement: str = "pre"  # "pre", "sandwich" (a norm on each write) or "post" (BERT)
    norm_offset: float = 0.0  # the norm multiplies by (offset + weight): Gemma's is 1
    # The modules of the norms each block's write passes through (sandwich and post norms)
    out_norms: tuple[str, str] | None = None
    attention_bias: bool = False  # q/k/v/o projections carry biases
    mlp_bias: bool = False
    gated_mlp: bool = False
    moe: bool = False  # the MLP is a mixture of experts (lmtt.models.moe)
    positions: str = "learned"  # "learned", "rotary" or "alibi"
    qk_norm: str = ""  # norms on q and k: "head" (each head's), "all" (over every head), ""
    supports: frozenset[str] = frozenset((ROUTES, ATTENTION))
    hooks: Mapping[str, str] = field(default_factory=lambda: STANDARD_HOOKS, hash=False)
    refusal: str = ""  # for a family lmtt refuses: why, in one clause
    # Why its q.k views (q.k breakdown, query-key map) are refused ("" when they are not);
    # the patterns are exact either way.
    qk_refusal: str = ""
    # Whether its captured queries and keys, under its score rules (lmtt.models.score_rules),
    # rebuild its pattern: then route traces keep them instead of the pattern.
    qk_rows: bool = True
    # The bridge's q and k hooks see them unrotated: lmtt.models.captured_rotary rotates them
    rotate_captured_qk: bool = False
    # Variants refused by their config: (config field, value, why, in one clause)
    refused_configs: tuple[tuple[str, object, str], ...] = ()

    @property
    def is_encoder(self) -> bool:
        return self.role == "encoder"

    @property
    def causal(self) -> bool:
        return self.role == "decoder"

    @property
    def parallel(self) -> bool:
        return self.layout == "parallel"

    @property
    def route_kinds(self) -> frozenset[str]:
        """The activation kinds lmtt.flow reads for this family (at every layer)."""
        kinds = {"resid_pre", "resid_post", "pattern", "v", "mlp_post"}
        kinds |= {"attn_out", "mlp_out"} if self.parallel else {"resid_mid"}
        if self.out_norms is not None:
            kinds |= {"attn_out_scale", "mlp_out_scale"}
        if self.moe:
            kinds.add("router")
        return frozenset(kinds | (_NORM_SCALES & set(self.hooks)))

    @property
    def capturable(self) -> frozenset[str]:
        """The activation kinds a trace of this family may hold."""
        kinds: frozenset[str] = frozenset()
        if ROUTES in self.supports:
            kinds |= self.route_kinds
        if ATTENTION in self.supports:
            kinds |= VIEW_KINDS | frozenset(QK_NORM_HOOKS)
        derived = {"mlp_post", "router"} if self.moe else set()  # computed, not hooked
        kinds = (kinds & frozenset(self.hooks)) | (kinds & derived) | (derived & {"router"})
        return kinds if self.qk_rows else kinds - {"q", "k"}

    def config_refusal(self, config: dict) -> str:
        """Why this variant is refused ("" when it is supported)."""
        return next((why for key, value, why in self.refused_configs
                     if config.get(key) == value), "")  # fmt: skip

    def hook_name(self, kind: str, layer: int | None = None) -> str:
        template = self.hooks.get(kind) or EDIT_HOOKS.get(kind)
        if template is None:
            raise KeyError(kind)
        return template.format(layer=layer)


def refused(name: str, model_types: tuple[str, ...], reason: str) -> Family:
    """A family lmtt knows but does not support yet, with the reason it is refused."""
    return Family(name, model_types, supports=frozenset(), refusal=reason)
