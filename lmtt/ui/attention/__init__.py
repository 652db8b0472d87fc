"""The Attention tab: head view, model view, q.k breakdown and query-key map."""
