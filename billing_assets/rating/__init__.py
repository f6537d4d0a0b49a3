"""Metered usage → priced charges per contract and month (CONTRACT.md §5)."""
