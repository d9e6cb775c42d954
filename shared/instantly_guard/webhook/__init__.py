"""The webhook receiver: only Instantly gets in, nothing accepted is ever lost.

- `secrets`: the secret payload format (plain or `{"current", "previous", "previous_expires_at"}`)
  and sources that re-read a mounted file when it changes;
- `auth`: constant-time secret check, optional HTTP Basic, optional source networks;
- `payload`: validation of Instantly's events (hand-written, no pydantic: it is on every
  request's path), the deterministic event id;
- `dedupe`: the recent-id memory that answers immediate duplicates;
- `handler`: `handle(request, deps) -> Response`, the order of checks and the durable hand-off;
- `settings`: `WebhookSettings` from the environment; `receiver`: `wire_receiver(env)` (raises;
  the function holds it in `instantly_guard.lazy.Lazy`) and `build_receiver(env)` (never raises).

Nothing is imported here: import from the module that holds a name, so that
`instantly_guard.webhook.secrets` (which the rotation function uses to write secret versions)
loads neither the receiver nor its dependencies, and `scripts/bundle.py` sees every import.
"""
