"""The least-privilege IAM policies under deploy/iam/: each role reaches only its prefixes and
actions. Judged by moto's own IAM policy evaluator (statement order, wildcards, explicit deny
wins) and validated by its copy of IAM's document grammar; moto does not evaluate conditions,
so the two conditional denies (TLS only; issued documents written only as conditional writes)
are held to their exact form here instead."""

import json
from pathlib import Path

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.iam.policy_validation import IAMPolicyDocumentValidator

IAM = Path(__file__).resolve().parents[1] / "deploy" / "iam"
BUCKET = "arn:aws:s3:::billing"
KEYS = {  # one object of each prefix CONTRACT.md §1 names, and the platform's own state
    "raw": "raw/usage/dt=2026-10-01/batch-0001.jsonl.gz",
    "reference": "reference/contracts.csv",
    "warehouse": "warehouse/usage_events/dt=2026-10-01/part-00000.parquet",
    "quarantine": "quarantine/usage/dt=2026-10-01/lines.jsonl.gz",
    "issued": "documents/2026-10/acme/INV-202610-acme.json",
    "statement": "documents/2026-10/acme/statement.html",
    "alerts": "alerts/2026-10/acme/big-api.2026-10.json",
    "entitlements": "entitlements/acme.json",
    "state": "state/reference_sensor/reference/contracts.csv",
    "staging": "staging/spark/run-1/dt=2026-10-01/0000000/usage_events.arrow",
}
G, P, D = "s3:GetObject", "s3:PutObject", "s3:DeleteObject"
EVERYWHERE = {(action, prefix) for action in (G, P, D) for prefix in KEYS}
ALLOWED = {
    "producer": {(P, "raw")},
    "billing-ops": {(G, "reference"), (P, "reference")} | {(G, prefix) for prefix in (
        "warehouse", "quarantine", "issued", "statement", "alerts", "entitlements")},
    "platform": {(G, prefix) for prefix in KEYS if prefix != "staging"}
    | {(P, prefix) for prefix in KEYS if prefix not in ("raw", "reference", "staging")}
    | {(D, "quarantine"), (D, "state")},
    # the spark engine's job (EMR Serverless job role): reads a day's inputs, publishes its daily
    # tables and quarantine through what its tasks staged, and clears the staging after
    "spark-job": {(G, prefix) for prefix in ("raw", "reference", "warehouse", "quarantine", "staging")}
    | {(P, prefix) for prefix in ("warehouse", "quarantine", "staging")} | {(D, "quarantine"), (D, "staging")},
    # the platform's extra policy when it launches that job: EMR Serverless and its logs, no S3
    "spark-launch": set(),
    # finance and analysts: tables and documents; never raw usage or rejected lines (personal data)
    "reader": {(G, "warehouse"), (G, "issued"), (G, "statement")},
}
LISTS = {"producer": False, "billing-ops": True, "platform": True, "reader": True, "spark-job": True,
         "spark-launch": False}


def _document(role: str) -> dict:
    return json.loads((IAM / f"{role}.json").read_text())


def _unconditional(document: dict) -> IAMPolicy:
    return IAMPolicy(json.dumps(document | {"Statement": [s for s in document["Statement"] if "Condition" not in s]}))


def test_every_role_has_a_policy_and_nothing_else_is_there():
    assert sorted(path.stem for path in IAM.glob("*.json")) == sorted(ALLOWED)


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_a_role_reaches_only_its_prefixes_and_actions(role):
    document = _document(role)
    IAMPolicyDocumentValidator(json.dumps(document)).validate()  # IAM's grammar: raises on a malformed policy
    policy = _unconditional(document)
    granted = {(action, prefix) for action, prefix in EVERYWHERE
               if policy.is_action_permitted(action, f"{BUCKET}/{KEYS[prefix]}") == PermissionResult.PERMITTED}
    assert granted == ALLOWED[role]
    assert (policy.is_action_permitted("s3:ListBucket", BUCKET) == PermissionResult.PERMITTED) == LISTS[role]
    # an issued document is never deleted, whoever asks
    assert policy.is_action_permitted(D, f"{BUCKET}/{KEYS['issued']}") == PermissionResult.DENIED


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_every_request_without_tls_is_denied(role):
    [tls] = [s for s in _document(role)["Statement"] if s.get("Sid") == "TlsOnly"]
    assert tls == {"Sid": "TlsOnly", "Effect": "Deny", "Action": "s3:*", "Resource": [BUCKET, f"{BUCKET}/*"],
                   "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def test_issued_documents_are_written_only_by_a_conditional_write():
    """The platform writes invoices, credit notes and adjustment invoices with If-None-Match: *;
    a plain PUT (an overwrite) of one is denied. Statements beside them are views, rewritten."""
    [once] = [s for s in _document("platform")["Statement"] if s.get("Sid") == "IssuedDocumentsAreWrittenOnce"]
    assert (once["Effect"], once["Action"], once["Condition"]) == (
        "Deny", P, {"Null": {"s3:if-none-match": "true"}})
    covered = IAMPolicy(json.dumps({"Version": "2012-10-17", "Statement": [{k: v for k, v in once.items()
                                                                             if k != "Condition"}]}))
    for key, denied in [(KEYS["issued"], True), ("documents/2026-10/acme/CN-202610-acme-1.json", True),
                        ("documents/2026-10/acme/ADJ-202610-acme-2.html", True), (KEYS["statement"], False),
                        ("documents/2026-10/acme/statement-lines.csv", False)]:
        assert (covered.is_action_permitted(P, f"{BUCKET}/{key}") == PermissionResult.DENIED) == denied, key
