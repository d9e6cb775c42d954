"""The rules, one module per area of the audit trail."""
