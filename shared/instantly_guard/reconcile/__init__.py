"""Reconciliation (issue 13): events Instantly failed to deliver, published after all.

Instantly keeps a delivery log (`GET /webhook-events`). A scheduled run reads it for our webhooks
since its checkpoint and publishes every payload whose deliveries all failed to the receiver's
topic, with the receiver's own event id (consumers drop a copy of an event that did arrive) and
the attribute `reconciled=true`. Optionally it resumes a webhook Instantly disabled, once the
receiver answers a health probe.

- `deliveries`: the reader of `GET /webhook-events` and the normalised `Delivery` record;
- `checkpoint`: where the run's checkpoint lives (the audit export's store port, its own object);
- `republish`: a payload -> the receiver's message (canonical data, id, attributes);
- `resume`: the health probe and `POST /webhooks/{id}/resume`;
- `report`: `RunReport`, what one run checked, found missing, republished and resumed;
- `run`: `Reconciler`, the algorithm; `settings`, `service`: configuration, the HTTP mapping.

See docs/reconcile.md for the algorithm and every assumption about the delivery log.
"""
