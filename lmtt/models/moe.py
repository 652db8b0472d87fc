"""Mixture-of-experts MLPs (Mixtral, Qwen2-MoE) as neurons the decomposition already handles.

An expert MLP block writes ``sum_e r[i,e] * down_e(act(gate_e x) * up_e x)`` (top-k experts
per token, router weights ``r``), plus, in Qwen2-MoE, a shared expert scaled by
``sigmoid(w_s . x)``. Each hidden unit n of expert e is a part with scalar
``r[i,e] * h_e[i,n]`` and direction ``down_e[:, n]``; the experts' units, one after the other
(the shared expert last), are the block's "neurons", so every contribution, view and index of
neurons works unchanged. :func:`expert_scalars` computes them from the MLP's input and the
router's choices, both captured in the forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int

from lmtt.errors import UnsupportedArchitectureError


@dataclass(frozen=True, eq=False)
class ExpertWeights:
    """Every layer's experts (float32, on the CPU)."""

    gate: Float[torch.Tensor, "L E d_e d"]
    up: Float[torch.Tensor, "L E d_e d"]
    down: Float[torch.Tensor, "L E d d_e"]
    shared_gate: Float[torch.Tensor, "L d_s d"] | None  # Qwen2-MoE's shared expert
    shared_up: Float[torch.Tensor, "L d_s d"] | None
    shared_down: Float[torch.Tensor, "L d d_s"] | None
    shared_router: Float[torch.Tensor, "L d"] | None  # sigmoid(w . x) scales its write
    act: str  # the transformers activation name

    @property
    def n_experts(self) -> int:
        return int(self.gate.shape[1])

    @property
    def sizes(self) -> tuple[int, ...]:
        """Hidden units per expert, the shared expert last."""
        shared = () if self.shared_gate is None else (int(self.shared_gate.shape[1]),)
        return (int(self.gate.shape[2]),) * self.n_experts + shared

    def directions(self, layer: int) -> Float[torch.Tensor, "N d"]:
        """Each unit's write direction, experts one after the other, the shared one last."""
        parts = [self.down[layer, e].T for e in range(self.n_experts)]
        if self.shared_down is not None:
            parts.append(self.shared_down[layer].T)
        return torch.cat(parts)


def _param(params: dict, *names: str) -> torch.Tensor:
    for name in names:
        if name in params:
            return params[name].detach().float().cpu()
    raise UnsupportedArchitectureError(f"expert weights not found (looked for {names[0]})")


def read_experts(bridge) -> ExpertWeights:
    hf = bridge.original_model
    params = {n.replace("._original_component", ""): p for n, p in hf.named_parameters()}
    layers = range(len(bridge.blocks))
    if any(f"model.layers.{i}.mlp.experts.down_proj" not in params for i in layers):
        raise UnsupportedArchitectureError(
            f"{getattr(hf.config, 'model_type', 'this model')} mixes dense and expert MLP layers, "
            "which lmtt does not decompose yet"
        )
    gate_up = torch.stack([_param(params, f"model.layers.{i}.mlp.experts.gate_up_proj")
                           for i in layers])  # fmt: skip
    down = torch.stack([_param(params, f"model.layers.{i}.mlp.experts.down_proj") for i in layers])
    shared = {}
    if "model.layers.0.mlp.shared_expert.down_proj.weight" in params:
        for key, name in (("shared_gate", "gate_proj"), ("shared_up", "up_proj"),
                          ("shared_down", "down_proj")):  # fmt: skip
            shared[key] = torch.stack(
                [
                    _param(params, f"model.layers.{i}.mlp.shared_expert.{name}.weight")
                    for i in layers
                ]
            )
        shared["shared_router"] = torch.stack(
            [_param(params, f"model.layers.{i}.mlp.shared_expert_gate.weight")[0] for i in layers]
        )
    gate, up = gate_up.chunk(2, dim=2)
    return ExpertWeights(
        gate=gate, up=up, down=down, act=str(hf.config.hidden_act),
        **{k: shared.get(k) for k in ("shared_gate", "shared_up", "shared_down", "shared_router")},
    )  # fmt: skip


def expert_scalars(
    experts: ExpertWeights,
    layer: int,
    x: Float[torch.Tensor, "*B T d"],
    indices: Int[torch.Tensor, "*B T k"],
    weights: Float[torch.Tensor, "*B T k"],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit scalars [*B, T, N], router weight of every expert [*B, T, E (+1 shared)]).

    ``weights`` are the chosen experts' weights [..., k] (at ``indices``) or, as the bridge
    reports them, every expert's weight [..., E], zero where not chosen."""
    from transformers.activations import ACT2FN

    act = ACT2FN[experts.act]
    E = experts.n_experts
    if weights.shape[-1] == E and indices.shape[-1] != E:
        router = weights.to(x.dtype).clone()
    else:
        router = torch.zeros(*x.shape[:-1], E, dtype=x.dtype)
        router.scatter_add_(-1, indices.long(), weights.to(x.dtype))
    hidden = act(torch.einsum("...d,efd->...ef", x, experts.gate[layer]))
    hidden = hidden * torch.einsum("...d,efd->...ef", x, experts.up[layer])  # [*B, T, E, d_e]
    scalars = [(hidden * router[..., None]).flatten(-2)]
    if experts.shared_gate is not None:
        g = torch.sigmoid(x @ experts.shared_router[layer])[..., None]  # [*B, T, 1]
        shared = act(x @ experts.shared_gate[layer].T) * (x @ experts.shared_up[layer].T)
        scalars.append(shared * g)
        router = torch.cat([router, g], dim=-1)
    return torch.cat(scalars, dim=-1), router
