"""`instantly-guard webhooks connect`: point Instantly's webhooks at the deployed receiver.

    webhooks connect --url RECEIVER_URL --webhook-id ID [--webhook-id ID2 ...]
    webhooks connect --url RECEIVER_URL --create NAME:EVENT_TYPE[:CAMPAIGN_ID] ...
        [--secret WEBHOOK_SECRET] [--key-secret SECRET] [--format text|json]

Each webhook gets the receiver URL and the webhook secret's current header in one request
(created with them, or one PATCH), is recorded on the managed webhook secret (annotation
`instantly-guard.webhook-ids`: every rotation of the secret then updates its header) and is
checked with Instantly's test delivery. Nobody types the secret: it is read from the store.
Running it again is safe (a webhook of the same name already targeting the URL is reused).
It only adds to the recorded list; to replace it, `secrets declare NAME --update --webhook-id ...`.

`--secret` defaults to the one managed webhook secret of the store (GUARD_BACKEND: `gcp` reads
Secret Manager in GOOGLE_CLOUD_PROJECT). The Instantly key is `--key-secret`'s `current` key,
by default the webhook secret's admin secret (webhooks:update); `--create` needs a key with
webhooks:create as well. Exit 0 when every test delivery was accepted, 1 when one was not,
2 for configuration (an unknown secret or webhook), 3 when Instantly or Google did not answer
or a rotation of the secret is under way.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from instantly_guard.cli import output


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "webhooks",
        help="connect Instantly's webhooks to the deployed receiver (webhooks connect)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")
    connect = commands.add_parser(
        "connect",
        help="point webhooks at the receiver with the secret header, record and test them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    connect.add_argument(
        "--url", required=True, help="the receiver's URL (terraform output -raw webhook_url)"
    )
    connect.add_argument(
        "--webhook-id", action="append", default=[], help="an existing webhook (repeatable)"
    )
    connect.add_argument(
        "--create",
        action="append",
        default=[],
        metavar="NAME:EVENT_TYPE[:CAMPAIGN]",
        help="a webhook to create unless one of this name targets the URL (repeatable)",
    )
    connect.add_argument("--secret", help="the managed webhook secret (default: the only one)")
    connect.add_argument(
        "--key-secret", help="the managed secret whose key calls Instantly (default: its admin)"
    )
    output.add_format_argument(connect)
    connect.set_defaults(handler=run_connect)


def parse_create(text: str) -> Any:
    """`NAME:EVENT_TYPE[:CAMPAIGN]` -> NewWebhook (ConfigError when malformed)."""
    from instantly_guard.connect import NewWebhook
    from instantly_guard.errors import ConfigError

    parts = text.split(":")
    if len(parts) not in {2, 3} or not all(p.strip() for p in parts):
        raise ConfigError(f"--create {text!r}: NAME:EVENT_TYPE[:CAMPAIGN_ID] expected")
    name, event_type = parts[0].strip(), parts[1].strip()
    campaign = parts[2].strip() if len(parts) == 3 else None
    return NewWebhook(name=name, event_type=event_type, campaign=campaign)


def run_connect(args: argparse.Namespace) -> int:
    from instantly_guard.cli.secrets import open_store
    from instantly_guard.connect import connect_webhooks
    from instantly_guard.logs import configure_logging
    from instantly_guard.rotation.builder import client_factory
    from instantly_guard.settings import CommonSettings, Reader

    configure_logging("WARNING", stream=sys.stderr)
    new = [parse_create(text) for text in args.create]
    store = open_store()
    secret = args.secret or sole_webhook_secret(store)
    common = CommonSettings.read(Reader(os.environ))
    report = connect_webhooks(
        store,
        client_factory(common),
        secret,
        args.url,
        webhook_ids=args.webhook_id,
        new=new,
        key_secret=args.key_secret,
    )
    output.emit(args, report.to_json(), _text)
    return output.EXIT_OK if report.ok else output.EXIT_FAILED


def sole_webhook_secret(store: Any) -> str:
    """The name of the store's one managed webhook secret (ConfigError for none or several)."""
    from instantly_guard.errors import ConfigError
    from instantly_guard.rotation.model import Kind, ManagedConfig

    names = sorted(
        c.name for c in ManagedConfig.declared_in(store) if c.kind is Kind.WEBHOOK_SECRET
    )
    if len(names) != 1:
        found = ", ".join(names) or "none"
        raise ConfigError(
            f"name the webhook secret with --secret (managed webhook secrets: {found})"
        )
    return names[0]


def _text(data: dict[str, Any]) -> str:
    rows = [
        [
            "ok" if w["ok"] else "FAIL",
            w["webhook_id"],
            w["name"],
            "created" if w["created"] else ("updated" if w["updated"] else "unchanged"),
            w["test_status"],
            w["detail"],
        ]
        for w in data["webhooks"]
    ]
    head = f"{data['secret']} -> {data['receiver_url']}"
    body = output.table(["", "webhook", "name", "change", "test", "detail"], rows)
    tail = f"recorded on {data['secret']}: {', '.join(data['recorded_webhook_ids'])}"
    return "\n".join([head, body, tail])
