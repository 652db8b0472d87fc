"""Families lmtt recognises but refuses, each with the reason (one clause)."""

from lmtt.models.families.base import refused

FAMILIES = (
    refused("GPT-J", ("gptj",), "GPT-J runs attention and MLP in parallel"),
    refused("GPT-NeoX", ("gpt_neox",), "GPT-NeoX / Pythia run attention and MLP in parallel"),
    refused("Phi", ("phi",), "Phi runs attention and MLP in parallel"),
    refused("Falcon", ("falcon",), "Falcon runs attention and MLP in parallel"),
    refused("RoBERTa", ("roberta",), "RoBERTa is an encoder (bidirectional attention, post-norm)"),
    refused("T5", ("t5",), "T5 is an encoder-decoder"),
    refused("BART", ("bart",), "BART is an encoder-decoder"),
)
