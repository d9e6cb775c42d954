"""Fixtures shared by the whole suite."""

# Sandbox fixtures: `sandbox` (demo workspace), `sandbox_factory`, `openapi_contract`. Every
# response a sandbox gives during a test is checked against Instantly's OpenAPI document.
from instantly_sandbox.testing import *  # noqa: F403
