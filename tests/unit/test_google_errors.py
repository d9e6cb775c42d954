"""One classification of Google's transient errors, built on google.api_core's, used by every
Google backend (no module keeps its own tuple)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

import instantly_guard
from instantly_guard.google_errors import is_transient

TRANSIENT = [
    gexc.InternalServerError("500"),
    gexc.ServiceUnavailable("503"),
    gexc.TooManyRequests("429"),
    gexc.ResourceExhausted("quota"),
    gexc.BadGateway("502"),
    gexc.GatewayTimeout("504"),
    gexc.DeadlineExceeded("deadline"),
    gexc.Unknown("unknown"),
    gexc.Aborted("aborted"),
    gexc.Cancelled("cancelled"),
    gexc.RetryError("gave up", cause=gexc.ServiceUnavailable("503")),
    requests.exceptions.ConnectionError("reset"),
    auth_exc.TransportError("metadata server unreachable"),
]
PERMANENT = [
    gexc.NotFound("404"),
    gexc.PermissionDenied("403"),
    gexc.InvalidArgument("400"),
    gexc.FailedPrecondition("400"),
    gexc.AlreadyExists("409"),
    gexc.MethodNotImplemented("501"),
    gexc.DataLoss("data loss"),
    gexc.Unauthenticated("401"),
    ValueError("not a Google error"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient(exc: Exception) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_not_transient(exc: Exception) -> None:
    assert not is_transient(exc)


def test_no_backend_keeps_its_own_list_of_transient_google_errors() -> None:
    # A tuple naming two of these classes is a private classification that will drift.
    names = r"(ServiceUnavailable|InternalServerError|DeadlineExceeded|TooManyRequests)"
    tuple_of_errors = re.compile(rf"\(\s*(?:\w+\.)?{names},\s*(?:\w+\.)?\w+", re.MULTILINE)
    root = Path(instantly_guard.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "google_errors.py" and tuple_of_errors.search(path.read_text())
    ]
    assert offenders == []
