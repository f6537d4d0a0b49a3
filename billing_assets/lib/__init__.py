"""Shared plumbing: exact decimals, the S3 lake, pandera-backed asset checks."""
