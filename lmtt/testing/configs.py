"""Tiny configs of every architecture lmtt supports, from transformers' own config classes.

Each entry maps lmtt's generic dimensions (d_model, n_layers, n_heads, n_kv_heads, d_mlp,
n_ctx) to the names that architecture's config uses, plus the fields its tiny test model needs
(local-attention layers, partial rotary, soft-capping, experts, ...).
"""

from __future__ import annotations

_GPT2 = {"d_model": "n_embd", "n_layers": "n_layer", "n_heads": "n_head", "d_mlp": "n_inner",
         "n_ctx": "n_positions"}  # fmt: skip
_LLAMA = {"d_model": "hidden_size", "n_layers": "num_hidden_layers",
          "n_heads": "num_attention_heads", "n_kv_heads": "num_key_value_heads",
          "d_mlp": "intermediate_size", "n_ctx": "max_position_embeddings"}  # fmt: skip
_NO_KV = {k: v for k, v in _LLAMA.items() if k != "n_kv_heads"}
_NEO = {"d_model": "hidden_size", "n_layers": "num_layers", "n_heads": "num_heads",
        "d_mlp": "intermediate_size", "n_ctx": "max_position_embeddings"}  # fmt: skip
_OPT = {**_NO_KV, "d_mlp": "ffn_dim"}
_BLOOM = {"d_model": "hidden_size", "n_layers": "n_layer", "n_heads": "n_head"}
_FALCON = {k: v for k, v in _NO_KV.items() if k != "d_mlp"} | {"d_mlp": "ffn_hidden_size"}


def _untied(dims: dict) -> dict:
    return {"tie_word_embeddings": False}


def _neo(dims: dict) -> dict:  # alternate global and local (windowed) attention layers
    n = dims["n_layers"]
    layers = [[["global", "local"], n // 2]] + ([[["global"], 1]] if n % 2 else [])
    return {"attention_types": layers, "window_size": 4}


def _head_dim(dims: dict) -> dict:
    return {"head_dim": dims["d_model"] // dims["n_heads"], "tie_word_embeddings": False}


def _gemma2(dims: dict) -> dict:
    caps = {"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0}
    # a query scalar unlike d_head, so that the scale is tested
    return _head_dim(dims) | caps | {"sliding_window": 4, "query_pre_attn_scalar": 16}


def _gemma3(dims: dict) -> dict:
    return _head_dim(dims) | {"sliding_window": 4, "query_pre_attn_scalar": 3,
                              "sliding_window_pattern": 2}  # fmt: skip


def _mixtral(dims: dict) -> dict:
    return {"num_local_experts": 4, "num_experts_per_tok": 2, "tie_word_embeddings": False}


def _qwen2_moe(dims: dict) -> dict:
    d = dims["d_mlp"] // 4
    return {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": d,
            "shared_expert_intermediate_size": 2 * d, "decoder_sparse_step": 1,
            "tie_word_embeddings": False}  # fmt: skip


# model_type -> (field names, a function of the dims giving the other config fields)
CONFIGS = {
    "gpt2": (_GPT2, lambda d: {}),
    "gpt_neo": (_NEO, _neo),
    "opt": (_OPT, lambda d: {"word_embed_proj_dim": d["d_model"]}),
    "llama": (_LLAMA, _untied),
    "mistral": (_LLAMA, _untied),
    "qwen2": (_LLAMA, _untied),
    "qwen3": (_LLAMA, _head_dim),
    "gemma": (_LLAMA, _head_dim),
    "phi3": (_LLAMA, _untied),
    "stablelm": (_LLAMA, _untied),
    "olmo": (_LLAMA, _untied),
    "bloom": (_BLOOM, lambda d: {}),
    "gemma2": (_LLAMA, _gemma2),
    "gemma3_text": (_LLAMA, _gemma3),
    "olmo2": (_LLAMA, _untied),
    "gptj": ({**_GPT2}, lambda d: {"rotary_dim": d["d_model"] // d["n_heads"] // 2}),
    "gpt_neox": (_NO_KV, lambda d: {"rotary_pct": 0.5}),
    "phi": (_LLAMA, lambda d: {"partial_rotary_factor": 0.5}),
    "falcon": (
        _FALCON,
        lambda d: {
            "parallel_attn": True,
            "new_decoder_architecture": False,
            "multi_query": True,
            "bias": True,
            "alibi": False,
        },
    ),
    "mixtral": (_LLAMA, _mixtral),
    "qwen2_moe": (_LLAMA, _qwen2_moe),
}
