"""`instantly-guard verify`: prove a deployment works, part by part (see `probes`)."""
