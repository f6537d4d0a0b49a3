"""The platform's one notion of now: the clock, or an instant a resource was configured with."""

from datetime import datetime, timezone


def now(as_of: str | None = None) -> datetime:
    """``as_of`` (an ISO instant, for tests and replays) if given, else the UTC clock."""
    return datetime.fromisoformat(as_of) if as_of else datetime.now(timezone.utc)
