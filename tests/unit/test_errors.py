import pytest

from instantly_guard.errors import (
    AuthenticationError,
    ConfigError,
    GuardError,
    InstantlyError,
    RateLimitedError,
    ScopeError,
    ServerError,
    TransportError,
)


def test_scope_message_is_parsed_into_required_and_found() -> None:
    parsed = ScopeError.parse(
        "Invalid scope. Required: accounts:read. Found: campaigns:all, leads:all"
    )
    assert parsed == (("accounts:read",), ("campaigns:all", "leads:all"))


def test_non_scope_message_does_not_parse() -> None:
    assert ScopeError.parse("Invalid API key") is None


def test_retryability_defaults_follow_the_kind_of_failure() -> None:
    common = {"method": "GET", "path": "/api/v2/audit-logs"}
    assert ServerError("boom", status=502, **common).retryable
    assert TransportError("reset", **common).retryable
    assert RateLimitedError("Rate limit exceeded", retry_after=2.0, **common).retryable
    assert not AuthenticationError("Invalid API key", status=401, **common).retryable
    assert not ScopeError("Invalid scope", status=401, **common).retryable


def test_message_names_the_request_line_and_status() -> None:
    error = AuthenticationError(
        "Invalid API key", method="GET", path="/api/v2/api-keys", status=401
    )
    assert str(error) == "GET /api/v2/api-keys -> 401: Invalid API key"
    assert isinstance(error, InstantlyError)
    assert isinstance(error, GuardError)


def test_config_error_lists_every_problem() -> None:
    error = ConfigError(["A is required", "B is not a number"])
    assert error.problems == ("A is required", "B is not a number")
    with pytest.raises(GuardError, match="A is required; B is not a number"):
        raise error
