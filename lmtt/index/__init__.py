"""Corpus indexes: the neuron index, the context index, their storage and the Ray runner."""
