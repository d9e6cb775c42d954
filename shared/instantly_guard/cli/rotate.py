"""`instantly-guard rotate NAME [--revoke-now]` and `instantly-guard sweep`.

The same protocol the rotation function runs, by hand: `rotate` starts a new rotation (or
resumes one left unfinished) and prints where the secret ends up; `--revoke-now` revokes every
old key as soon as the new one is current (a leaked key). `sweep` finishes due revocations and
destructions of every managed secret. Settings come from the environment (see
`instantly_guard.rotation.builder`); INSTANTLY_API_BASE points at the sandbox for local runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from instantly_guard.cli import output

# The rotation modules (the Instantly client, pydantic, Google's client library) are imported in
# the handlers: `instantly-guard --help` must not pay for them.


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rotate = subparsers.add_parser(
        "rotate",
        help="rotate a managed secret now (the protocol the rotation function runs)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rotate.add_argument("name")
    rotate.add_argument(
        "--revoke-now",
        action="store_true",
        help="revoke the old key(s) as soon as the new one is current (a leaked key)",
    )
    output.add_format_argument(rotate)
    rotate.set_defaults(handler=rotate_secret)

    sweep = subparsers.add_parser(
        "sweep", help="finish due revocations and resume stalled rotations of managed secrets"
    )
    output.add_format_argument(sweep)
    sweep.set_defaults(handler=sweep_secrets)


def _quiet_logs() -> None:
    from instantly_guard.logs import configure_logging

    configure_logging("WARNING", stream=sys.stderr)


def rotate_secret(args: argparse.Namespace) -> int:
    """Exit 0 when the secret rotated (or this rotation had already finished), else the table's
    code for the error; an undeclared or unmanaged name is a usage error (2)."""
    from instantly_guard.cli.names import unknown_secret
    from instantly_guard.rotation.builder import build_rotator
    from instantly_guard.rotation.results import Outcome
    from instantly_guard.rotation.run import Trigger
    from instantly_guard.secrets.base import SecretNotFoundError

    _quiet_logs()
    rotator = build_rotator(os.environ)
    trigger = Trigger.manual(rotator.now(), revoke_now=args.revoke_now)
    try:
        result = rotator.rotate(args.name, trigger)
    except SecretNotFoundError:
        raise unknown_secret(rotator.store, args.name) from None
    if result.outcome is Outcome.NOT_MANAGED:
        raise unknown_secret(rotator.store, args.name, managed=False)
    data = {
        "secret": result.secret,
        "outcome": result.outcome.value,
        "rotation_id": result.rotation_id,
        "current_version": result.current_version,
        "revoked_versions": result.revoked_versions,
        "destroyed_versions": result.destroyed_versions,
    }
    output.emit(args, data, _rotation_text)
    return output.EXIT_OK


def _rotation_text(d: dict[str, Any]) -> str:
    verb = "rotated" if d["outcome"] == "rotated" else "already rotated (nothing to do)"
    lines = [f"{d['secret']}: {verb}; current is version {d['current_version']}"]
    if d["revoked_versions"]:
        lines.append(f"  revoked versions {', '.join(d['revoked_versions'])}")
    if d["destroyed_versions"]:
        lines.append(f"  destroyed versions {', '.join(d['destroyed_versions'])}")
    if not d["revoked_versions"]:
        lines.append(
            "  the old key keeps working until its grace ends (then `instantly-guard sweep`)"
        )
    return "\n".join(lines)


def sweep_secrets(args: argparse.Namespace) -> int:
    """Exit 0 when every secret is in order, 3 when only transient errors stopped some, else 1."""
    from instantly_guard.rotation.builder import build_rotator
    from instantly_guard.rotation.results import describe_results

    _quiet_logs()
    rotator = build_rotator(os.environ)
    results = rotator.sweep()
    output.emit(args, describe_results(results), _sweep_text)
    errors = [r for r in results.values() if isinstance(r, Exception)]
    if not errors:
        return output.EXIT_OK
    if all(output.exit_code_for(e) == output.EXIT_UPSTREAM for e in errors):
        return output.EXIT_UPSTREAM
    return output.EXIT_FAILED


def _sweep_text(summary: dict[str, Any]) -> str:
    if not summary:
        return "no managed secrets to sweep"
    lines = []
    for name, item in sorted(summary.items()):
        if "error" in item:
            lines.append(f"{name}: FAILED {item['error']}")
            continue
        done = [
            f"revoked {', '.join(item['revoked_versions'])}" if item["revoked_versions"] else "",
            f"destroyed {', '.join(item['destroyed_versions'])}"
            if item["destroyed_versions"]
            else "",
        ]
        what = "; ".join(d for d in done if d) or "nothing due"
        lines.append(f"{name}: {what} (current version {item['current_version']})")
    return "\n".join(lines)
