from datetime import timedelta
from pathlib import Path

import pytest

from instantly_guard.errors import ConfigError
from instantly_guard.settings import Backend, CommonSettings, Reader, parse_duration


def test_defaults_need_no_environment() -> None:
    settings = CommonSettings.from_env({})
    assert settings.backend is Backend.GCP
    assert settings.api_base == "https://api.instantly.ai/api/v2"
    assert settings.state_dir == Path(".guard")
    assert settings.rate_per_second < 100
    assert settings.rate_per_minute < 6000


def test_every_problem_is_reported_at_once() -> None:
    env = {
        "GUARD_BACKEND": "azure",
        "INSTANTLY_API_BASE": "http://api.example.com",
        "INSTANTLY_RATE_PER_SECOND": "fast",
        "INSTANTLY_RATE_PER_MINUTE": "9000",
        "LOG_LEVEL": "chatty",
    }
    with pytest.raises(ConfigError) as caught:
        CommonSettings.from_env(env)
    problems = caught.value.problems
    assert len(problems) == 5
    text = str(caught.value)
    for name in env:
        assert name in text


def test_settings_are_frozen() -> None:
    settings = CommonSettings.from_env({"GUARD_BACKEND": "local"})
    with pytest.raises(AttributeError):
        settings.backend = Backend.GCP  # type: ignore[misc]


def test_plain_http_is_allowed_only_on_loopback() -> None:
    local = CommonSettings.from_env({"INSTANTLY_API_BASE": "http://127.0.0.1:8700/api/v2/"})
    assert local.api_base == "http://127.0.0.1:8700/api/v2"
    with pytest.raises(ConfigError, match="must be https"):
        CommonSettings.from_env({"INSTANTLY_API_BASE": "http://10.0.0.1/api/v2"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_bad_duration_names_the_variable() -> None:
    reader = Reader({"GRACE": "soon"})
    assert reader.duration("GRACE", timedelta(hours=1)) == timedelta(hours=1)
    with pytest.raises(ConfigError, match="GRACE"):
        reader.finish()


def test_secret_from_file_and_never_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("s3cr3t-value-from-a-volume\n")
    reader = Reader({"TOKEN_FILE": str(path)})
    secret = reader.secret("TOKEN")
    assert secret is not None
    assert secret.reveal() == "s3cr3t-value-from-a-volume"
    both = Reader({"TOKEN": "inline-secret-value", "TOKEN_FILE": str(path)})
    assert both.secret("TOKEN") is None
    with pytest.raises(ConfigError, match="not both") as caught:
        both.finish()
    assert "inline-secret-value" not in str(caught.value)


def test_unreadable_secret_file_is_a_problem(tmp_path: Path) -> None:
    reader = Reader({"TOKEN_FILE": str(tmp_path / "missing")})
    assert reader.secret("TOKEN") is None
    with pytest.raises(ConfigError, match="TOKEN_FILE: cannot read"):
        reader.finish()


def test_networks_and_flags() -> None:
    reader = Reader({"CIDRS": "10.0.0.0/8, 2001:db8::/32, nonsense", "ON": "yes", "OFF": "maybe"})
    assert [str(n) for n in reader.networks("CIDRS")] == ["10.0.0.0/8", "2001:db8::/32"]
    assert reader.flag("ON", default=False) is True
    assert reader.flag("OFF", default=True) is True
    with pytest.raises(ConfigError) as caught:
        reader.finish()
    assert len(caught.value.problems) == 2
