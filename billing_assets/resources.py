"""Resources, configured from the environment when they are used, never at import."""

from dagster_aws.s3 import S3Resource

from billing_assets.lib.lake import BillingLake


def billing_lake(bucket: str | None = None) -> BillingLake:
    """The lake as deployed: boto3's own chain supplies credentials, region and
    ``AWS_ENDPOINT_URL``; ``BILLING_BUCKET`` names the bucket (default ``billing``)."""
    return BillingLake(s3=S3Resource(max_attempts=5), bucket=bucket)
