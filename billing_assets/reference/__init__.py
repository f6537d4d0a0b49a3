"""Reference data owned by billing and network ops: meters, plans, customers, contracts, IPs."""
