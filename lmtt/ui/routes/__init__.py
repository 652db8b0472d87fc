"""The Routes tab: the route graph and one panel per kind of element."""
