"""Stand-in Terraform providers: the vendored schemas served over Terraform's plugin protocol.

`plugin` (handshake, gRPC service), `protocol` (the tfplugin5 messages), `cty` (values on the
wire), `planner` (what the providers' SDK does with a configuration). docs/terraform-tests.md
says what they model and what they do not.
"""
