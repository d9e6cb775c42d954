"""`instantly-guard rotate NAME [--revoke-now]` and `instantly-guard sweep`.

The same protocol the rotation function runs, by hand: `rotate` starts a new rotation (or
resumes one left unfinished) and prints where the secret ends up; `--revoke-now` revokes every
old key as soon as the new one is current (a leaked key). `sweep` finishes due revocations and
destructions of every managed secret. Settings come from the environment (see
`instantly_guard.rotation.builder`); INSTANTLY_API_BASE points at the sandbox for local runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

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
    rotate.set_defaults(handler=rotate_secret)

    sweep = subparsers.add_parser(
        "sweep", help="finish due revocations and resume stalled rotations of managed secrets"
    )
    sweep.set_defaults(handler=sweep_secrets)


def rotate_secret(args: argparse.Namespace) -> int:
    from instantly_guard.rotation.builder import build_rotator
    from instantly_guard.rotation.run import Trigger

    rotator = build_rotator(os.environ)
    trigger = Trigger.manual(rotator.now(), revoke_now=args.revoke_now)
    result = rotator.rotate(args.name, trigger)
    sys.stdout.write(
        json.dumps(
            {
                "secret": result.secret,
                "outcome": result.outcome.value,
                "rotation_id": result.rotation_id,
                "current_version": result.current_version,
                "revoked_versions": result.revoked_versions,
                "destroyed_versions": result.destroyed_versions,
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    return 0 if result.outcome.value == "rotated" else 1


def sweep_secrets(args: argparse.Namespace) -> int:
    from instantly_guard.rotation.builder import build_rotator
    from instantly_guard.rotation.results import describe_results

    rotator = build_rotator(os.environ)
    results = rotator.sweep()
    sys.stdout.write(json.dumps(describe_results(results), indent=2, sort_keys=True) + "\n")
    return 1 if any(isinstance(r, Exception) for r in results.values()) else 0
