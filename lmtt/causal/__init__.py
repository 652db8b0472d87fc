"""Causal evidence for routes (DESIGN.md section 7): interventions in real forward passes, the
metric they change, edge effects, attribution scores and the faithfulness of a graph."""
