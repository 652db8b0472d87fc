"""The Context search tab."""
