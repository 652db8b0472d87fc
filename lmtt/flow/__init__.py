"""Information-flow routes: decomposition (DESIGN §1), contributions (§2), graph (§3), lens (§4)."""
