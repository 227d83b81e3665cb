"""schemathesis hooks for scripts/fuzz.sh."""

import os
import uuid

import schemathesis

ADMIN_ID = os.environ["FUZZ_ADMIN_ID"]


@schemathesis.hook
def before_call(context, case, kwargs):
    """The run acts with the registered admin's token: a change aimed at
    the admin's own account (which could demote, deactivate or delete it,
    and so end the run's access) goes to an id no account has instead."""
    if (
        case.path == "/api/v1/users/{id}"
        and case.method.upper() != "GET"
        and str(case.path_parameters.get("id")) == ADMIN_ID
    ):
        case.path_parameters["id"] = str(uuid.uuid4())
