"""Raw usage objects in S3 → accepted usage events and quarantined lines."""
