"""Corpus readers (plain text, JSON lines, CoNLL-U) and fixed-length token windows."""
