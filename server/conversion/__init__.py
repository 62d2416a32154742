"""Wire documents <-> catalog documents and rows: the only layer that knows both shapes."""
