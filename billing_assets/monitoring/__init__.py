"""Watching the chain: reconciliation of every stage against the next."""
