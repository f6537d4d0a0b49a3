"""Usage-metering and billing data platform built on Dagster software-defined assets."""
