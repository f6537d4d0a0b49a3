"""Rated charges → invoice lines and invoices (CONTRACT.md §5)."""
