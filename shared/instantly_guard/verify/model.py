"""What a probe reports: one `Result` per part it checked, and the exit code of the whole run."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (a status word, not a password)
    FAIL = "fail"  # the deployment is wrong here: `fix` says what to do
    ERROR = "error"  # the part could not be checked (Instantly or Google did not answer)
    SKIP = "skip"  # nothing to check, or not checkable with what is configured


EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_UPSTREAM: Final = 3


@dataclass(frozen=True, slots=True)
class Result:
    """`probe` names the check, `subject` what it looked at (a secret, a webhook, a URL)."""

    probe: str
    subject: str
    status: Status
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "probe": self.probe,
            "subject": self.subject,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Report:
    results: tuple[Result, ...]

    @classmethod
    def of(cls, results: Iterable[Result]) -> Report:
        return cls(tuple(results))

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)

    @property
    def exit_code(self) -> int:
        """0 all good; 1 a part fails (even if another could not be checked); 3 when nothing
        failed but a part could not be checked (running again may help)."""
        if self.count(Status.FAIL):
            return EXIT_FAILED
        if self.count(Status.ERROR):
            return EXIT_UPSTREAM
        return EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code == EXIT_OK,
            "summary": {s.value: self.count(s) for s in Status},
            "results": [r.to_json() for r in self.results],
        }
