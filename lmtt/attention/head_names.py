"""The head catalogue's metric names (no heavy imports: the command line's parser reads them)."""

METRICS = ("previous_token", "induction", "duplicate_token", "first_token", "entropy")
ON_RANDOM = ("induction", "duplicate_token")  # measured on repeated random tokens
BATCH_METRICS = ("route_share", "mean_contribution")  # from a batch (lmtt.index.batch_store)
