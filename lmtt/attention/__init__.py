"""The classic attention views as data: patterns and rotated q/k (``views``), the q.k
breakdown (``qk``), the query-key map (``qk_map``) and masked-LM prediction (``masked_lm``).
No drawing here: ``lmtt.viz`` turns these results into figures."""
