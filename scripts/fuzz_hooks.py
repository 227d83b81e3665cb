"""schemathesis hooks for scripts/fuzz.sh."""

import json
import os
import re
import urllib.request
import uuid

import schemathesis

ADMIN_ID = os.environ["FUZZ_ADMIN_ID"]
TOKEN = os.environ["FUZZ_TOKEN"]
BASE = os.environ["FUZZ_BASE"]


def _decoy_account():
    """A new staff account of the clinic (readonly): its id."""
    body = json.dumps({
        "email": f"decoy-{uuid.uuid4().hex[:12]}@example.fr",
        "password": "decoy password",
        "firstName": "Decoy",
        "lastName": "Account",
        "role": "readonly",
    }).encode()
    request = urllib.request.Request(
        f"{BASE}/api/v1/users",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]["id"]


@schemathesis.hook
def before_call(context, case, kwargs):
    """The run acts with the registered admin's token: a change aimed at
    the admin's own account (which could demote, deactivate or delete it,
    and so end the run's access) goes to a live decoy account instead, made
    for it, which answers as any account would. (An id that no account has
    would answer 404, which the stateful phase rightly reports as a created
    resource gone missing.)"""
    if (
        case.path == "/api/v1/users/{id}"
        and case.method.upper() != "GET"
        and str(case.path_parameters.get("id")) == ADMIN_ID
    ):
        case.path_parameters["id"] = _decoy_account()


# The fields a schema-valid request may still be refused for (422), per
# operation, each for a rule a JSON schema cannot state (see fuzz.toml).
# A 422 to a schema-valid request that names any other field, or none,
# fails the run: fuzz.toml's 422 allowances stand for these rules only.
def _for(methods, path, fields):
    return {f"{m} /api/v1/{path}": frozenset(fields) for m in methods}


# Rows named by id must be live rows of the clinic: patient, practitioner,
# consent template, catalogue row, category, staff account.
RULE_FIELDS = {
    # `endAt` after `startAt`; the status workflow.
    **_for(("POST",), "appointments", {"patientId", "practitionerId", "endAt", "status"}),
    **_for(("PUT", "PATCH"), "appointments/{id}", {"patientId", "practitionerId", "endAt", "status"}),
    **_for(("POST",), "appointments/{id}/items", {"productServiceId"}),
    # The status workflow (signed, then revoked).
    **_for(("POST",), "consents", {"patientId", "templateId", "status"}),
    **_for(("PUT", "PATCH"), "consents/{id}", {"patientId", "templateId", "status"}),
    # A record needs a title or a content.
    **_for(("POST",), "medical-records", {"patientId", "practitionerId", "title", "content"}),
    **_for(("PUT", "PATCH"), "medical-records/{id}", {"patientId", "practitionerId", "title", "content"}),
    # Credit notes are made by the server and a type is fixed once created; a
    # new document is a draft and statuses follow the workflow; a due date
    # not before the issue date; a line's or a document's amounts must fit.
    **_for(("POST",), "documents", {"patientId", "documentType", "status", "issueDate", "dueDate",
                                    "items", "items[].productServiceId", "items[].unitPriceCents"}),
    **_for(("PUT", "PATCH"), "documents/{id}", {"patientId", "documentType", "status", "issueDate",
                                               "dueDate", "items", "items[].productServiceId",
                                               "items[].unitPriceCents"}),
    **_for(("POST",), "practitioners", {"userId"}),
    **_for(("PUT", "PATCH"), "practitioners/{id}", {"userId"}),
    **_for(("POST",), "products-services", {"categoryIds"}),
    **_for(("PUT", "PATCH"), "products-services/{id}", {"categoryIds"}),
    # A French patient's national id is a NIR with a valid key; a birth date
    # is not in the future.
    **_for(("POST",), "patients", {"nationalId", "birthDate"}),
    **_for(("PUT", "PATCH"), "patients/{id}", {"nationalId", "birthDate"}),
    # A time zone the database knows; a language tag; a SIRET's check digit
    # (Luhn); a VAT number's key, against its SIREN.
    **_for(("PUT", "PATCH"), "clinic/settings", {"timezone", "locale", "siret", "vatNumber"}),
}

RECORD = os.environ.get("FUZZ_RECORD_REFUSALS")


def _detail_fields(response):
    try:
        details = response.json()["error"].get("details") or []
    except Exception:  # noqa: BLE001 - a body that is not the envelope
        return None
    fields = {d.get("field") or "" for d in details if isinstance(d, dict)}
    # `items[3].unitPriceCents` is the rule of `items[].unitPriceCents`.
    return sorted({re.sub(r"\[\d+\]", "[]", f) for f in fields})


def _schema_valid(case):
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive:
        return False
    return not any(c.mode.is_negative for c in meta.components.values())


@schemathesis.check
def refusals_name_their_rule(ctx, response, case):
    """A schema-valid request refused with 422 names only fields whose
    rules the document cannot state (RULE_FIELDS)."""
    if response.status_code != 422 or not _schema_valid(case):
        return None
    fields = _detail_fields(response)
    label = case.operation.label
    if RECORD:
        with open(RECORD, "a", encoding="utf-8") as out:
            out.write(f"{label}\t{','.join(fields or ['<none>'])}\n")
        return None
    allowed = RULE_FIELDS.get(label, set())
    unexplained = [f for f in (fields or ["<none>"]) if f not in allowed]
    if unexplained:
        raise AssertionError(
            f"{label} refused a schema-valid request for {unexplained}, "
            "which no rule in fuzz_hooks.RULE_FIELDS explains"
        )
    return None
