"""Families lmtt recognises but refuses, each with the reason (one clause)."""

from lmtt.models.families.base import refused

FAMILIES = (
    refused("RoBERTa", ("roberta",), "RoBERTa is an encoder (bidirectional attention, post-norm)"),
    refused("T5", ("t5",), "T5 is an encoder-decoder"),
    refused("BART", ("bart",), "BART is an encoder-decoder"),
)
