"""Helpers every layer may use (the lowest layer: it imports no other part of mmgnn)."""
