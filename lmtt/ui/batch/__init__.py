"""The Batch tab: a batch folder's prompts ranked by a head's or a neuron's contribution."""
