"""The Heads tab: the head catalogue as a scatter, and the picked head."""
