"""The tfplugin5 messages the stand-in needs, built at run time from the field list below.

Written from Terraform's docs/plugin-protocol/tfplugin5.proto (hashicorp/terraform): only the
messages and fields a `validate` and a `plan -refresh=false` exchange, under the field numbers of
that file. Nested messages are flattened (`Schema.Block` is `Schema_Block`), enums are int32 and
`map<string, X>` a repeated entry message: all three are the same bytes on the wire, and the wire
is all the peer sees. No generated code, no protoc.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "tfplugin5"

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "bool": _F.TYPE_BOOL,
    "int64": _F.TYPE_INT64,
    "int32": _F.TYPE_INT32,
}

# message name -> [(field name, number, type, repeated)]; a type not in _SCALARS is a message.
MESSAGES: dict[str, list[tuple[str, int, str, bool]]] = {
    "DynamicValue": [("msgpack", 1, "bytes", False), ("json", 2, "bytes", False)],
    "AttributePath_Step": [
        ("attribute_name", 1, "string", False),
        ("element_key_string", 2, "string", False),
        ("element_key_int", 3, "int64", False),
    ],
    "AttributePath": [("steps", 1, "AttributePath_Step", True)],
    "Diagnostic": [
        ("severity", 1, "int32", False),
        ("summary", 2, "string", False),
        ("detail", 3, "string", False),
        ("attribute", 4, "AttributePath", False),
    ],
    "Schema_Attribute": [
        ("name", 1, "string", False),
        ("type", 2, "bytes", False),
        ("description", 3, "string", False),
        ("required", 4, "bool", False),
        ("optional", 5, "bool", False),
        ("computed", 6, "bool", False),
        ("sensitive", 7, "bool", False),
        ("write_only", 10, "bool", False),
    ],
    "Schema_NestedBlock": [
        ("type_name", 1, "string", False),
        ("block", 2, "Schema_Block", False),
        ("nesting", 3, "int32", False),
        ("min_items", 4, "int64", False),
        ("max_items", 5, "int64", False),
    ],
    "Schema_Block": [
        ("version", 1, "int64", False),
        ("attributes", 2, "Schema_Attribute", True),
        ("block_types", 3, "Schema_NestedBlock", True),
    ],
    "Schema": [("version", 1, "int64", False), ("block", 2, "Schema_Block", False)],
    "SchemaEntry": [("key", 1, "string", False), ("value", 2, "Schema", False)],
    "ServerCapabilities": [
        ("plan_destroy", 1, "bool", False),
        ("get_provider_schema_optional", 2, "bool", False),
        ("move_resource_state", 3, "bool", False),
    ],
    "Empty": [],
    "GetMetadata_Response": [
        ("server_capabilities", 1, "ServerCapabilities", False),
        ("diagnostics", 2, "Diagnostic", True),
        ("data_sources", 3, "TypeName", True),
        ("resources", 4, "TypeName", True),
    ],
    "TypeName": [("type_name", 1, "string", False)],
    "GetProviderSchema_Response": [
        ("provider", 1, "Schema", False),
        ("resource_schemas", 2, "SchemaEntry", True),
        ("data_source_schemas", 3, "SchemaEntry", True),
        ("diagnostics", 4, "Diagnostic", True),
        ("server_capabilities", 6, "ServerCapabilities", False),
    ],
    "PrepareProviderConfig_Request": [("config", 1, "DynamicValue", False)],
    "PrepareProviderConfig_Response": [
        ("prepared_config", 1, "DynamicValue", False),
        ("diagnostics", 2, "Diagnostic", True),
    ],
    "ValidateConfig_Request": [
        ("type_name", 1, "string", False),
        ("config", 2, "DynamicValue", False),
    ],
    "Diagnostics_Response": [("diagnostics", 1, "Diagnostic", True)],
    "Configure_Request": [
        ("terraform_version", 1, "string", False),
        ("config", 2, "DynamicValue", False),
    ],
    "PlanResourceChange_Request": [
        ("type_name", 1, "string", False),
        ("prior_state", 2, "DynamicValue", False),
        ("proposed_new_state", 3, "DynamicValue", False),
        ("config", 4, "DynamicValue", False),
        ("prior_private", 5, "bytes", False),
    ],
    "PlanResourceChange_Response": [
        ("planned_state", 1, "DynamicValue", False),
        ("requires_replace", 2, "AttributePath", True),
        ("planned_private", 3, "bytes", False),
        ("diagnostics", 4, "Diagnostic", True),
        ("legacy_type_system", 5, "bool", False),
    ],
    "ReadDataSource_Request": [
        ("type_name", 1, "string", False),
        ("config", 2, "DynamicValue", False),
    ],
    "ReadDataSource_Response": [
        ("state", 1, "DynamicValue", False),
        ("diagnostics", 2, "Diagnostic", True),
    ],
    "UpgradeResourceState_Request": [
        ("type_name", 1, "string", False),
        ("version", 2, "int64", False),
    ],
    "UpgradeResourceState_Response": [
        ("upgraded_state", 1, "DynamicValue", False),
        ("diagnostics", 2, "Diagnostic", True),
    ],
    "Stop_Response": [("Error", 1, "string", False)],
}


def _build() -> dict[str, Any]:
    file = descriptor_pb2.FileDescriptorProto(
        name="instantly_guard_tests/tfplugin5_subset.proto", package=PACKAGE, syntax="proto3"
    )
    for name, fields in MESSAGES.items():
        message = file.message_type.add(name=name)
        for field_name, number, type_, repeated in fields:
            field = message.field.add(
                name=field_name,
                number=number,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if type_ in _SCALARS:
                field.type = _SCALARS[type_]
            else:
                field.type = _F.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{type_}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in MESSAGES
    }


M = _build()

# rpc name -> (request message, response message), as the Provider service names them.
RPCS: dict[str, tuple[str, str]] = {
    "GetMetadata": ("Empty", "GetMetadata_Response"),
    "GetSchema": ("Empty", "GetProviderSchema_Response"),
    "PrepareProviderConfig": ("PrepareProviderConfig_Request", "PrepareProviderConfig_Response"),
    "ValidateResourceTypeConfig": ("ValidateConfig_Request", "Diagnostics_Response"),
    "ValidateDataSourceConfig": ("ValidateConfig_Request", "Diagnostics_Response"),
    "Configure": ("Configure_Request", "Diagnostics_Response"),
    "PlanResourceChange": ("PlanResourceChange_Request", "PlanResourceChange_Response"),
    "ReadDataSource": ("ReadDataSource_Request", "ReadDataSource_Response"),
    "UpgradeResourceState": ("UpgradeResourceState_Request", "UpgradeResourceState_Response"),
    "Stop": ("Empty", "Stop_Response"),
}

# Diagnostic.Severity and Schema.NestedBlock.NestingMode
ERROR, WARNING = 1, 2
NESTING = {"single": 1, "list": 2, "set": 3, "map": 4, "group": 5}
