"""The embedded default: an S3-compatible server on loopback and a realistic synthetic month."""
