"""Inventory (issue 21): what Instantly's audit log does not record, as change entries.

A scheduled run reads the workspace's members, API keys, webhooks, block list and settings with
a read-only key, compares them with the last snapshot and writes one entry per difference to the
same exported audit log as Instantly's own entries (labels `source=inventory`,
`change=<kind>`), then stores the new snapshot with a compare-and-swap.

- `records`: an API object -> its compact, comparable record (a secret never: header values
  only as fingerprints, key values never read);
- `snapshot`: the compact snapshot (per kind, records sorted by id) and its encoding;
- `stores`: where the snapshot lives (Cloud Storage with a generation precondition, a file);
- `diff`: the merge of two sorted streams of records;
- `changes`: a record's before/after -> the vocabulary's change entries, severity, insertId;
- `run`: `Inventory`, one run; `settings`, `service`: configuration and the HTTP mapping.

See docs/inventory.md for the design and what Instantly's API cannot show.
"""
