"""Presentation helpers: figures and text renderings built from analysis results."""
