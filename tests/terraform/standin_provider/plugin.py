"""A stand-in provider: go-plugin's handshake, then tfplugin5 over gRPC with TLS.

Terraform starts `terraform-provider-<name>` from a dev_overrides folder with
TF_PLUGIN_MAGIC_COOKIE, PLUGIN_PROTOCOL_VERSIONS and PLUGIN_CLIENT_CERT in the environment. A
provider instance (`start`) serves gRPC on a loopback port with a self-signed certificate for
`localhost` and answers with one handshake line:
`1|5|tcp|127.0.0.1:<port>|grpc|<certificate, DER, unpadded base64>`. Terraform stops it through
plugin.GRPCController/Shutdown. `serve` runs one instance as the process itself
(`python -m tests.terraform.standin_provider google`); the tests run many instances in one host
process instead (host.py says why).
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import os
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from tests.terraform.standin_provider import cty, planner
from tests.terraform.standin_provider.protocol import ERROR, NESTING, RPCS, M

MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE"
# Terraform's public handshake constant (not a secret): a provider refuses to run without it.
MAGIC_COOKIE = (
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"  # pragma: allowlist secret
)
SCHEMA_DIR = Path(__file__).resolve().parents[3] / "spec" / "terraform-provider-schemas"
# provider name -> (vendored file, key in its "providers")
SOURCES = {
    "google": ("google-7.45.0.json", "google"),
    "google-beta": ("google-7.45.0.json", "google-beta"),
    "archive": ("archive-2.7.1-time-0.13.1.json", "archive"),
    "time": ("archive-2.7.1-time-0.13.1.json", "time"),
}


@functools.cache
def load_schemas(provider: str) -> dict[str, Any]:
    """The vendored schema of one provider: `provider`, `resources`, `data_sources`."""
    file, key = SOURCES[provider]
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / file).read_text())["providers"][key]
    return loaded


def _block_message(block: dict[str, Any], version: int = 0) -> Any:
    message = M["Schema_Block"](version=version)
    for name, spec in sorted(block.get("attributes", {}).items()):
        message.attributes.add(
            name=name,
            type=json.dumps(spec["type"], separators=(",", ":")).encode(),
            required=bool(spec.get("required")),
            optional=bool(spec.get("optional")),
            computed=bool(spec.get("computed")),
            sensitive=bool(spec.get("sensitive")),
            write_only=bool(spec.get("write_only")),
        )
    for name, nested in sorted(block.get("block_types", {}).items()):
        message.block_types.add(
            type_name=name,
            block=_block_message(nested["block"]),
            nesting=NESTING[nested["nesting_mode"]],
            min_items=nested.get("min_items", 0),
            max_items=nested.get("max_items", 0),
        )
    return message


def _schema_message(schema: dict[str, Any]) -> Any:
    version = schema.get("version", 0)
    return M["Schema"](version=version, block=_block_message(schema["block"], version))


def _diagnostics(problems: list[planner.Problem]) -> list[Any]:
    out = []
    for problem in problems:
        diagnostic = M["Diagnostic"](severity=ERROR, summary=problem.summary, detail=problem.detail)
        for step in problem.path:
            if isinstance(step, int):
                diagnostic.attribute.steps.add(element_key_int=step)
            else:
                diagnostic.attribute.steps.add(attribute_name=step)
        out.append(diagnostic)
    return out


@functools.cache
def _schema_response(provider: str) -> Any:
    """GetProviderSchema's answer, built once per process (a host serves many instances)."""
    schemas = load_schemas(provider)
    response = M["GetProviderSchema_Response"](provider=_schema_message(schemas["provider"]))
    response.server_capabilities.plan_destroy = True
    # Terraform may then reuse the schema it read once instead of asking every new instance.
    response.server_capabilities.get_provider_schema_optional = True
    for field, kind in (("resource_schemas", "resources"), ("data_source_schemas", "data_sources")):
        for name, schema in sorted(schemas[kind].items()):
            getattr(response, field).add(key=name, value=_schema_message(schema))
    return response


class Provider:
    """The tfplugin5 Provider service for one provider's vendored schema."""

    def __init__(self, name: str, schemas: dict[str, Any], stop: threading.Event) -> None:
        self.name = name
        self.schemas = schemas
        self.config = planner.ProviderConfig()
        self.stop = stop
        self._types: dict[tuple[str, str], Any] = {}

    def _object_type(self, kind: str, type_name: str) -> Any:
        """The cty type of a resource or data source (the provider's own block: kind "")."""
        key = (kind, type_name)
        if key not in self._types:
            block = self.schemas["provider"] if not kind else self._schema(kind, type_name)
            self._types[key] = planner.block_type(block["block"])
        return self._types[key]

    def _schema(self, kind: str, type_name: str) -> dict[str, Any]:
        found: dict[str, Any] | None = self.schemas[kind].get(type_name)
        if found is None:
            # Terraform refuses such a type before asking; this is the backstop.
            raise KeyError(f"{self.name} stand-in has no schema for {type_name}")
        return found

    def GetMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        response = M["GetMetadata_Response"]()
        response.server_capabilities.plan_destroy = True
        response.server_capabilities.get_provider_schema_optional = True
        for name in sorted(self.schemas["resources"]):
            response.resources.add(type_name=name)
        for name in sorted(self.schemas["data_sources"]):
            response.data_sources.add(type_name=name)
        return response

    def GetSchema(self, request: Any, context: Any) -> Any:  # noqa: N802
        return _schema_response(self.name)

    def PrepareProviderConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        block = self.schemas["provider"]["block"]
        config = cty.decode(request.config.msgpack, self._object_type("", ""))
        return M["PrepareProviderConfig_Response"](
            prepared_config=request.config,
            diagnostics=_diagnostics(planner.validate(block, config)),
        )

    def Configure(self, request: Any, context: Any) -> Any:  # noqa: N802
        values = cty.decode(request.config.msgpack, self._object_type("", "")) or {}
        self.config = planner.ProviderConfig(values)
        return M["Diagnostics_Response"]()

    def ValidateResourceTypeConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        block = self._schema("resources", request.type_name)["block"]
        config = cty.decode(
            request.config.msgpack, self._object_type("resources", request.type_name)
        )
        problems = planner.validate(block, config)
        return M["Diagnostics_Response"](diagnostics=_diagnostics(problems))

    def ValidateDataSourceConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        block = self._schema("data_sources", request.type_name)["block"]
        config = cty.decode(
            request.config.msgpack, self._object_type("data_sources", request.type_name)
        )
        problems = planner.validate(block, config)
        return M["Diagnostics_Response"](diagnostics=_diagnostics(problems))

    def UpgradeResourceState(self, request: Any, context: Any) -> Any:  # noqa: N802
        # Plans here start from no state: nothing is ever stored to upgrade.
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the stand-in plans creates only")

    def PlanResourceChange(self, request: Any, context: Any) -> Any:  # noqa: N802
        schema = self._schema("resources", request.type_name)
        object_type = self._object_type("resources", request.type_name)
        config = cty.decode(request.config.msgpack, object_type)
        prior = cty.decode(request.prior_state.msgpack, object_type)
        response = M["PlanResourceChange_Response"](legacy_type_system=True)
        if config is None:  # destroy: the planned state is null
            response.planned_state.msgpack = cty.encode(None, object_type)
            return response
        if prior is not None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "the stand-in plans creates only")
        planned, problems = planner.plan_create(schema, config, self.config)
        response.planned_state.msgpack = cty.encode(planned, object_type)
        response.diagnostics.extend(_diagnostics(problems))
        return response

    def ReadDataSource(self, request: Any, context: Any) -> Any:  # noqa: N802
        schema = self._schema("data_sources", request.type_name)
        object_type = self._object_type("data_sources", request.type_name)
        config = cty.decode(request.config.msgpack, object_type)
        state = planner.read_data(request.type_name, schema, config, self.config)
        return M["ReadDataSource_Response"](
            state=M["DynamicValue"](msgpack=cty.encode(state, object_type))
        )

    def Stop(self, request: Any, context: Any) -> Any:  # noqa: N802
        return M["Stop_Response"]()


def _handlers(provider: Provider, stop: threading.Event) -> list[grpc.GenericRpcHandler]:
    methods = {}
    for rpc, (request, response) in RPCS.items():
        methods[rpc] = grpc.unary_unary_rpc_method_handler(
            getattr(provider, rpc),
            request_deserializer=M[request].FromString,
            response_serializer=M[response].SerializeToString,
        )

    def shutdown(request: bytes, context: Any) -> bytes:
        stop.set()
        return b""

    def health(request: bytes, context: Any) -> bytes:
        return b"\x08\x01"  # HealthCheckResponse{status: SERVING}

    def raw(function: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(
            function, request_deserializer=bytes, response_serializer=bytes
        )

    return [
        grpc.method_handlers_generic_handler("tfplugin5.Provider", methods),
        grpc.method_handlers_generic_handler("plugin.GRPCController", {"Shutdown": raw(shutdown)}),
        grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": raw(health)}),
    ]


def certificate() -> tuple[bytes, bytes, bytes]:
    """A fresh self-signed certificate for `localhost` (PEM key, PEM cert, DER cert)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "HashiCorp"),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(hours=12))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        key_pem,
        cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.DER),
    )


def _server_certificate() -> tuple[bytes, bytes, bytes]:
    """The certificate the harness made once for all launches (TF_STANDIN_TLS_DIR), else a new one.

    A provider process starts about ten times per plan; making a key each time costs more than
    the rest of its start-up.
    """
    folder = os.environ.get("TF_STANDIN_TLS_DIR")
    if folder:
        base = Path(folder)
        return (
            (base / "key.pem").read_bytes(),
            (base / "cert.pem").read_bytes(),
            (base / "cert.der").read_bytes(),
        )
    return certificate()


def write_certificate(folder: Path) -> None:
    """Make the certificate every stand-in process of a test session serves (see above)."""
    key_pem, cert_pem, cert_der = certificate()
    (folder / "key.pem").write_bytes(key_pem)
    (folder / "cert.pem").write_bytes(cert_pem)
    (folder / "cert.der").write_bytes(cert_der)


def start(provider_name: str, stop: threading.Event, *, tls: bool) -> tuple[grpc.Server, str]:
    """One provider instance serving on a loopback port, and its go-plugin handshake line.

    With `tls` (Terraform always asks for AutoMTLS), the server side of go-plugin's AutoMTLS.
    Terraform's client certificate is ECDSA P-521, which gRPC's BoringSSL does not offer to
    verify: a request for it makes the Go client send none and the handshake fail, so the
    stand-in (loopback, test-only) asks for none.
    """
    provider = Provider(provider_name, load_schemas(provider_name), stop)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    for handler in _handlers(provider, stop):
        server.add_generic_rpc_handlers((handler,))
    certificate = ""
    if tls:
        key_pem, cert_pem, cert_der = _server_certificate()
        credentials = grpc.ssl_server_credentials([(key_pem, cert_pem)])
        port = server.add_secure_port("127.0.0.1:0", credentials)
        certificate = base64.b64encode(cert_der).decode().rstrip("=")
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"1|5|tcp|127.0.0.1:{port}|grpc|{certificate}"


def serve(provider_name: str) -> int:
    """Run as the provider process itself: handshake on stdout, serve until Terraform stops it."""
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE:
        print(
            "This binary is a plugin. Terraform runs it; it is not meant to be run directly.",
            file=sys.stderr,
        )
        return 1
    versions = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "5").split(",")
    if "5" not in versions:
        print(f"the stand-in speaks protocol 5; Terraform offered {versions}", file=sys.stderr)
        return 1
    stop = threading.Event()
    server, handshake = start(provider_name, stop, tls=bool(os.environ.get("PLUGIN_CLIENT_CERT")))
    print(handshake, flush=True)
    stop.wait()
    server.stop(grace=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
