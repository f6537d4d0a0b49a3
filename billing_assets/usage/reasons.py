"""The closed set of quarantine reason codes, in the contract's precedence order (§3)."""

from __future__ import annotations

from enum import Enum


class Reason(str, Enum):
    """Why a line (or a whole object) was quarantined. Declaration order is precedence order:
    a line gets the first reason that applies."""

    LINE_TOO_LONG = "line_too_long"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    INVALID_TIMESTAMP = "invalid_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    PARTITION_MISMATCH = "partition_mismatch"
    UNKNOWN_METER = "unknown_meter"
    INVALID_QUANTITY = "invalid_quantity"
    UNKNOWN_CUSTOMER = "unknown_customer"
    UNATTRIBUTED_IP = "unattributed_ip"
    NO_ACTIVE_CONTRACT = "no_active_contract"
    DUPLICATE_CONFLICT = "duplicate_conflict"
    UNREADABLE_FILE = "unreadable_file"


REASON_CODES: tuple[str, ...] = tuple(reason.value for reason in Reason)
