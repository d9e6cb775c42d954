"""`instantly-guard verify`: prove a deployment works, and say what to fix where it does not.

    GUARD_BACKEND=gcp GOOGLE_CLOUD_PROJECT=P AUDIT_CHECKPOINT_BUCKET=B \\
        instantly-guard verify --receiver-url URL [--format auto|table|json]
    instantly-guard verify          (GUARD_BACKEND=local: the stack `make run` started)

Probes (instantly_guard.verify.probes, none of which writes): the receiver refuses a forged
delivery; each webhook connected to a managed webhook secret accepts Instantly's test delivery;
each managed key's `current` key authenticates and holds exactly its declared scopes; each
managed secret has a rotation schedule and topic and is not overdue; the last audit export and
reconcile runs succeeded recently (their checkpoints). Settings: instantly_guard.verify.deployment.

Exit status: 0 every probe passed (or had nothing to check), 1 a part fails, 2 configuration,
3 a part could not be checked (Instantly or Google did not answer; running again may help).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from instantly_guard.cli import output


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="prove a deployment (or the local stack) works, part by part",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--receiver-url",
        help="the webhook receiver (default VERIFY_RECEIVER_URL; locally the running stack's)",
    )
    parser.add_argument(
        "--format",
        choices=("auto", "table", "json"),
        default="auto",
        help="table for a person, json for a program (default auto: table on a terminal)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from instantly_guard.logs import configure_logging
    from instantly_guard.verify.deployment import build_deployment
    from instantly_guard.verify.model import Report
    from instantly_guard.verify.probes import run_probes

    configure_logging("WARNING", stream=sys.stderr)
    url = args.receiver_url or os.environ.get("VERIFY_RECEIVER_URL") or _local_receiver()
    deployment = build_deployment(os.environ, receiver_url=url)
    report = Report.of(run_probes(deployment))
    as_json = args.format == "json" or (args.format == "auto" and not sys.stdout.isatty())
    body = output.to_json(report.to_json()) if as_json else render(report.to_json())
    sys.stdout.write(body.rstrip("\n") + "\n")
    sys.stdout.flush()
    return report.exit_code


def _local_receiver() -> str | None:
    """With GUARD_BACKEND=local, the receiver of the stack `make run` started, if one runs."""
    if os.environ.get("GUARD_BACKEND", "gcp") != "local":
        return None
    from instantly_guard.localstack import state

    info = state.running(Path(os.environ.get("GUARD_STATE_DIR") or ".guard"))
    webhook = info.functions.get("webhook") if info else None
    return webhook.url if webhook else None


def render(data: dict[str, Any]) -> str:
    """One line per result, its fix indented below; a summary line last."""
    rows = data["results"]
    width = max((len(r["probe"]) for r in rows), default=0)
    lines = []
    for r in rows:
        lines.append(
            f"{r['status'].upper():<5}  {r['probe']:<{width}}  {r['subject']}: {r['detail']}"
        )
        if r["fix"] and r["status"] != "pass":
            lines.append(f"{'':<5}  {'':<{width}}  fix: {r['fix']}")
    summary = data["summary"]
    verdict = "deployment verified" if data["ok"] else "deployment NOT verified"
    lines.append(
        f"{verdict}: {summary['pass']} passed, {summary['fail']} failed, "
        f"{summary['error']} not checkable, {summary['skip']} skipped"
    )
    return "\n".join(lines)
