"""Pytest plugin: every sandbox started during a test is checked against the OpenAPI document.

Expose it from a conftest with `from instantly_sandbox.testing import *  # noqa: F403`. It gives:

- `openapi_contract` (session): the loaded `OpenApiContract`.
- `sandbox_factory`: `make(**Sandbox kwargs) -> Sandbox`, started on a free loopback port and
  stopped at teardown.
- `sandbox`: `sandbox_factory(seed="demo")`.
- an autouse check: at the teardown of every test, the responses that any sandbox started during
  the session (by these fixtures, by another fixture of any scope, or by `Sandbox().start()` in
  the test itself) produced since the last check are validated; a response that does not match
  its documented schema fails that test (an error in teardown listing the first problems).

A test that means to produce a non-conforming answer can call `sb.responses.clear()` afterwards.
The document is loaded only when a sandbox has answered something, so tests without a sandbox
never need it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from instantly_sandbox.contract import OpenApiContract
from instantly_sandbox.sandbox import START_LISTENERS, Sandbox

__all__ = [
    "openapi_contract",
    "pytest_configure",
    "pytest_unconfigure",
    "sandbox",
    "sandbox_contract_check",
    "sandbox_factory",
]

SandboxFactory = Callable[..., Sandbox]
_SHOWN = 20


class _Tracker:
    """Sandboxes started in this session and how many of their responses were checked."""

    def __init__(self) -> None:
        self.sandboxes: list[Sandbox] = []
        self.checked: dict[int, int] = {}
        self._contract: OpenApiContract | None = None

    def started(self, sb: Sandbox) -> None:
        self.sandboxes.append(sb)
        self.checked[id(sb)] = sb.responses.total

    def contract(self) -> OpenApiContract:
        if self._contract is None:
            self._contract = OpenApiContract.load()
        return self._contract

    def problems(self) -> list[str]:
        found: list[str] = []
        for sb in list(self.sandboxes):
            new = sb.responses.since(self.checked.get(id(sb), 0))
            self.checked[id(sb)] = sb.responses.total
            if new:
                found.extend(self.contract().check_all(new))
            if not sb.running:  # nothing more will come from it
                self.sandboxes.remove(sb)
                self.checked.pop(id(sb), None)
        return found


_TRACKER = _Tracker()


def pytest_configure(config: pytest.Config) -> None:
    START_LISTENERS.append(_TRACKER.started)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _TRACKER.started in START_LISTENERS:
        START_LISTENERS.remove(_TRACKER.started)


@pytest.fixture(scope="session")
def openapi_contract() -> OpenApiContract:
    """Instantly's OpenAPI document, ready to validate responses."""
    return _TRACKER.contract()


@pytest.fixture(autouse=True)
def sandbox_contract_check() -> Iterator[None]:
    """Fail the test when a sandbox answered something its OpenAPI schema does not allow."""
    yield
    if not _TRACKER.sandboxes:
        return
    problems = _TRACKER.problems()
    if problems:
        shown = "\n  ".join(problems[:_SHOWN])
        more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        pytest.fail(
            f"sandbox responses do not match the OpenAPI document:\n  {shown}{more}",
            pytrace=False,
        )


@pytest.fixture
def sandbox_factory() -> Iterator[SandboxFactory]:
    """Make started sandboxes; all are stopped at teardown (and contract-checked, as all are)."""
    made: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        sb = Sandbox(**kwargs).start()
        made.append(sb)
        return sb

    yield make
    for sb in made:
        sb.stop()


@pytest.fixture
def sandbox(sandbox_factory: SandboxFactory) -> Sandbox:
    """A started sandbox with the "demo" workspace (see `instantly_sandbox.seed`)."""
    return sandbox_factory(seed="demo")
