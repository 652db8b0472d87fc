"""The family records: one per model family, read by the loader and the capture routine."""

from __future__ import annotations

import pytest

from lmtt.errors import UnsupportedArchitectureError
from lmtt.models.families import ATTENTION, ROUTES, SUPPORTED, family_for
from lmtt.models.families.base import VIEW_KINDS


def test_every_model_type_belongs_to_one_family():
    types = [t for f in SUPPORTED for t in f.model_types]
    assert len(types) == len(set(types))
    for family in SUPPORTED:
        for model_type in family.model_types:
            assert family_for(model_type, "m") is family
        assert family.route_kinds <= family.capturable, family.name  # every kind it reads
        views = VIEW_KINDS - ({"q", "k"} if family.qk_refusal else set())
        assert family.capturable >= views, family.name


def test_refused_and_unknown_families_list_what_is_supported():
    with pytest.raises(UnsupportedArchitectureError, match="encoder-decoder") as err:
        family_for("t5", "my-model")
    assert "my-model" in str(err.value)
    for family in SUPPORTED:
        assert family.name in str(err.value)
    with pytest.raises(UnsupportedArchitectureError, match="'mamba' is not supported"):
        family_for("mamba", "m")


def test_loaded_models_match_their_records(gpt2_model, llama_model):
    for model in (gpt2_model, llama_model):
        family, cfg = model.family, model.bridge.cfg
        assert ROUTES in family.supports and ATTENTION in family.supports
        assert family.norm == ("rmsnorm" if cfg.normalization_type == "RMS" else "layernorm")
        assert (family.positions == "rotary") == (cfg.positional_embedding_type == "rotary")
        assert family.gated_mlp == bool(cfg.gated_mlp)
        assert model.dims.family == family.name and family.causal


def test_encoder_record():
    bert = family_for("bert", "m")
    assert bert.is_encoder and not bert.causal and ROUTES in bert.supports
    assert bert.norm_placement == "post" and {"pattern", "q", "k"} <= bert.capturable


def test_a_variant_its_config_marks_is_refused():
    with pytest.raises(UnsupportedArchitectureError, match="this OPT variant is post-norm"):
        family_for("opt", "facebook/opt-350m", {"do_layer_norm_before": False})
    assert family_for("opt", "m", {"do_layer_norm_before": True}).name == "OPT"
    with pytest.raises(UnsupportedArchitectureError, match="parallel"):
        family_for("stablelm", "m", {"use_parallel_residual": True})
