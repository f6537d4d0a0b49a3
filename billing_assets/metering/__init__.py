"""Accepted usage events → metered usage per customer, meter and day."""
