"""The Masked LM tab."""
