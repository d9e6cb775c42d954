"""An in-process gRPC stand-in of `google.cloud.secretmanager.v1.SecretManagerService`.

No emulator of Secret Manager exists, so this implements the RPCs our backend uses with the
service's documented semantics, served over real gRPC on a free loopback port, so the real
`SecretManagerServiceClient` (serialisation, error mapping, pagers) is what the tests exercise:

- CreateSecret (ALREADY_EXISTS), GetSecret, DeleteSecret, ListSecrets (`labels.K=V AND ...`
  filter, paging), UpdateSecret (etag check -> FAILED_PRECONDITION, update_mask required:
  labels / annotations / version_aliases; aliases must name a live version; annotations' keys
  plus values must total less than 16 KiB, else INVALID_ARGUMENT), AddSecretVersion
  (crc32c verified; does not change the secret's etag), GetSecretVersion, AccessSecretVersion
  by number, alias or `latest` (disabled/destroyed -> FAILED_PRECONDITION), ListSecretVersions,
  DisableSecretVersion, DestroySecretVersion (drops aliases pointing at the version).
- `calls` logs every RPC by method name; `fail_next(method, code, after=False)` makes the next
  call fail, before or (`after=True`, a lost response) after carrying it out.
"""

from __future__ import annotations

import secrets as _random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import google_crc32c
import grpc
from google.cloud import secretmanager_v1 as sm
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)
from google.protobuf import empty_pb2
from tests.standins.grpc_server import GrpcStandIn

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
State = sm.SecretVersion.State


class _AbortError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message


@dataclass
class _Version:
    number: int
    data: bytes
    state: Any
    create_time: datetime
    etag: str = field(default_factory=lambda: f'"{_random.token_hex(6)}"')


@dataclass
class _Secret:
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    aliases: dict[str, int]
    etag: str
    create_time: datetime
    versions: list[_Version] = field(default_factory=list)
    rotation: Any = None  # sm.Rotation, as created (Terraform sets it with the topics)
    topics: list[Any] = field(default_factory=list)


@dataclass
class _Fault:
    method: str
    code: grpc.StatusCode
    after: bool
    remaining: int


ANNOTATIONS_LIMIT = 16 * 1024  # bytes of keys plus values; the total must be strictly less


def _check_annotations(annotations: dict[str, str]) -> None:
    size = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    if size >= ANNOTATIONS_LIMIT:
        raise _AbortError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"The total size of annotations ({size} bytes) must be less than 16KiB.",
        )


def _etag() -> str:
    return f'"{_random.token_hex(8)}"'


class SecretManagerStandIn(GrpcStandIn):
    """Start with `start()` (or as a context manager); `client()` gives a real client on it."""

    max_workers = 16

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: dict[str, _Secret] = {}
        self._faults: list[_Fault] = []
        self.calls: Counter[str] = Counter()
        self.call_log: list[str] = []

    def client(self) -> sm.SecretManagerServiceClient:
        channel = grpc.insecure_channel(self.target)
        return sm.SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(channel=channel)
        )

    # -- controls ----------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        *,
        times: int = 1,
        after: bool = False,
    ) -> None:
        """Fail the next `times` calls of `method` (e.g. "AddSecretVersion") with `code`;
        `after=True` carries the call out first (the answer is lost)."""
        with self._lock:
            self._faults.append(_Fault(method, code, after, times))

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()
            self.call_log.clear()

    def payload(self, name: str, number: int) -> bytes:
        with self._lock:
            return self._secrets[name].versions[number - 1].data

    # -- plumbing ----------------------------------------------------------------------------

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _handler(self) -> grpc.GenericRpcHandler:
        methods: dict[str, tuple[Callable[[Any], Any], Any, Any]] = {
            "CreateSecret": (self._create_secret, sm.CreateSecretRequest, sm.Secret),
            "GetSecret": (self._get_secret, sm.GetSecretRequest, sm.Secret),
            "DeleteSecret": (self._delete_secret, sm.DeleteSecretRequest, None),
            "ListSecrets": (self._list_secrets, sm.ListSecretsRequest, sm.ListSecretsResponse),
            "UpdateSecret": (self._update_secret, sm.UpdateSecretRequest, sm.Secret),
            "AddSecretVersion": (self._add_version, sm.AddSecretVersionRequest, sm.SecretVersion),
            "GetSecretVersion": (self._get_version, sm.GetSecretVersionRequest, sm.SecretVersion),
            "AccessSecretVersion": (
                self._access,
                sm.AccessSecretVersionRequest,
                sm.AccessSecretVersionResponse,
            ),
            "ListSecretVersions": (
                self._list_versions,
                sm.ListSecretVersionsRequest,
                sm.ListSecretVersionsResponse,
            ),
            "DisableSecretVersion": (
                self._disable,
                sm.DisableSecretVersionRequest,
                sm.SecretVersion,
            ),
            "DestroySecretVersion": (
                self._destroy,
                sm.DestroySecretVersionRequest,
                sm.SecretVersion,
            ),
        }
        handlers = {}
        for method, (impl, request_type, response_type) in methods.items():
            serialize = (
                response_type.serialize
                if response_type is not None
                else (lambda msg: msg.SerializeToString())
            )
            handlers[method] = grpc.unary_unary_rpc_method_handler(
                self._wrap(method, impl),
                request_deserializer=request_type.deserialize,
                response_serializer=serialize,
            )
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    def _wrap(self, method: str, impl: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self.calls[method] += 1
                self.call_log.append(method)
            fault = self._take_fault(method)
            if fault is not None and not fault.after:
                context.abort(fault.code, f"injected fault on {method}")
            try:
                with self._lock:
                    response = impl(request)
            except _AbortError as exc:
                context.abort(exc.code, exc.message)
            if fault is not None:
                context.abort(fault.code, f"injected fault on {method} (after the change)")
            return response

        return behaviour

    def _secret(self, name: str) -> _Secret:
        secret = self._secrets.get(name)
        if secret is None:
            raise _AbortError(grpc.StatusCode.NOT_FOUND, f"Secret [{name}] not found.")
        return secret

    def _version(self, name: str) -> tuple[_Secret, _Version]:
        secret_name, sep, ref = name.partition("/versions/")
        if not sep:
            raise _AbortError(grpc.StatusCode.INVALID_ARGUMENT, f"bad version name {name}")
        secret = self._secret(secret_name)
        if ref == "latest":
            if not secret.versions:
                raise _AbortError(
                    grpc.StatusCode.NOT_FOUND, f"Secret [{secret_name}] has no versions"
                )
            return secret, secret.versions[-1]
        if ref.isdigit():
            number = int(ref)
        elif ref in secret.aliases:
            number = secret.aliases[ref]
        else:
            raise _AbortError(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")
        if not 1 <= number <= len(secret.versions):
            raise _AbortError(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")
        return secret, secret.versions[number - 1]

    @staticmethod
    def _message(secret: _Secret) -> sm.Secret:
        return sm.Secret(
            name=secret.name,
            labels=secret.labels,
            annotations=secret.annotations,
            version_aliases=secret.aliases,
            etag=secret.etag,
            create_time=secret.create_time,
            replication=sm.Replication(automatic=sm.Replication.Automatic()),
            rotation=secret.rotation,
            topics=secret.topics,
        )

    @staticmethod
    def _version_message(secret: _Secret, version: _Version) -> sm.SecretVersion:
        return sm.SecretVersion(
            name=f"{secret.name}/versions/{version.number}",
            state=version.state,
            create_time=version.create_time,
            etag=version.etag,
        )

    # -- RPCs --------------------------------------------------------------------------------

    def _create_secret(self, request: sm.CreateSecretRequest) -> sm.Secret:
        name = f"{request.parent}/secrets/{request.secret_id}"
        if name in self._secrets:
            raise _AbortError(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
        regional = "/locations/" in request.parent  # a regional secret takes no replication
        if regional and "replication" in request.secret:
            raise _AbortError(
                grpc.StatusCode.INVALID_ARGUMENT, "replication is not allowed for regional secrets"
            )
        if not regional and "replication" not in request.secret:
            raise _AbortError(grpc.StatusCode.INVALID_ARGUMENT, "replication is required")
        _check_annotations(dict(request.secret.annotations))
        secret = _Secret(
            name=name,
            labels=dict(request.secret.labels),
            annotations=dict(request.secret.annotations),
            aliases={},
            etag=_etag(),
            create_time=datetime.now(UTC),
        )
        if "rotation" in request.secret:
            if not request.secret.topics:
                # Secret Manager: a rotation needs a topic to notify.
                raise _AbortError(grpc.StatusCode.INVALID_ARGUMENT, "rotation requires topics")
            secret.rotation = request.secret.rotation
        secret.topics = list(request.secret.topics)
        self._secrets[name] = secret
        return self._message(secret)

    def _get_secret(self, request: sm.GetSecretRequest) -> sm.Secret:
        return self._message(self._secret(request.name))

    def _delete_secret(self, request: sm.DeleteSecretRequest) -> empty_pb2.Empty:
        secret = self._secret(request.name)
        if request.etag and request.etag != secret.etag:
            raise _AbortError(grpc.StatusCode.FAILED_PRECONDITION, "etag mismatch")
        del self._secrets[request.name]
        return empty_pb2.Empty()

    def _list_secrets(self, request: sm.ListSecretsRequest) -> sm.ListSecretsResponse:
        wanted: dict[str, str] = {}
        for term in filter(None, (t.strip() for t in request.filter.split(" AND "))):
            key, sep, value = term.partition("=")
            if not sep or not key.startswith("labels."):
                raise _AbortError(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported filter {term!r}")
            wanted[key[len("labels.") :]] = value
        matches = sorted(
            (
                s
                for n, s in self._secrets.items()
                if n.startswith(request.parent + "/secrets/")
                and all(s.labels.get(k) == v for k, v in wanted.items())
            ),
            key=lambda s: s.name,
        )
        size = request.page_size or 25
        start = int(request.page_token or 0)
        page = matches[start : start + size]
        token = str(start + size) if start + size < len(matches) else ""
        return sm.ListSecretsResponse(
            secrets=[self._message(s) for s in page],
            next_page_token=token,
            total_size=len(matches),
        )

    def _update_secret(self, request: sm.UpdateSecretRequest) -> sm.Secret:
        secret = self._secret(request.secret.name)
        if request.secret.etag and request.secret.etag != secret.etag:
            raise _AbortError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"The etag provided does not match the current etag of {secret.name}.",
            )
        paths = list(request.update_mask.paths)
        if not paths:
            raise _AbortError(grpc.StatusCode.INVALID_ARGUMENT, "update_mask is required")
        if "annotations" in paths:  # checked before anything changes: the update is all or nothing
            _check_annotations(dict(request.secret.annotations))
        for path in paths:
            if path == "version_aliases":
                aliases = dict(request.secret.version_aliases)
                for alias, number in aliases.items():
                    if alias in ("latest", "NEW") or not 1 <= number <= len(secret.versions):
                        raise _AbortError(grpc.StatusCode.INVALID_ARGUMENT, f"bad alias {alias}")
                    if secret.versions[number - 1].state == State.DESTROYED:
                        raise _AbortError(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f"alias {alias} cannot point at a destroyed version",
                        )
                secret.aliases = aliases
            elif path == "annotations":
                secret.annotations = dict(request.secret.annotations)
            elif path == "labels":
                secret.labels = dict(request.secret.labels)
            elif path == "rotation":
                secret.rotation = request.secret.rotation if "rotation" in request.secret else None
            elif path == "topics":
                secret.topics = list(request.secret.topics)
            else:
                raise _AbortError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"stand-in cannot update {path}"
                )
        secret.etag = _etag()
        return self._message(secret)

    def _add_version(self, request: sm.AddSecretVersionRequest) -> sm.SecretVersion:
        secret = self._secret(request.parent)
        data = bytes(request.payload.data)
        if "data_crc32c" in request.payload and request.payload.data_crc32c != int(
            google_crc32c.value(data)
        ):
            raise _AbortError(grpc.StatusCode.INVALID_ARGUMENT, "Checksum mismatch")
        version = _Version(
            number=len(secret.versions) + 1,
            data=data,
            state=State.ENABLED,
            create_time=datetime.now(UTC),
        )
        secret.versions.append(version)
        return self._version_message(secret, version)

    def _get_version(self, request: sm.GetSecretVersionRequest) -> sm.SecretVersion:
        return self._version_message(*self._version(request.name))

    def _access(self, request: sm.AccessSecretVersionRequest) -> sm.AccessSecretVersionResponse:
        secret, version = self._version(request.name)
        if version.state != State.ENABLED:
            raise _AbortError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Secret Version [{secret.name}/versions/{version.number}] is in "
                f"{State(version.state).name} state.",
            )
        return sm.AccessSecretVersionResponse(
            name=f"{secret.name}/versions/{version.number}",
            payload=sm.SecretPayload(
                data=version.data, data_crc32c=int(google_crc32c.value(version.data))
            ),
        )

    def _list_versions(
        self, request: sm.ListSecretVersionsRequest
    ) -> sm.ListSecretVersionsResponse:
        secret = self._secret(request.parent)
        newest_first = list(reversed(secret.versions))  # as the service lists them
        size = request.page_size or 25
        start = int(request.page_token or 0)
        page = newest_first[start : start + size]
        token = str(start + size) if start + size < len(newest_first) else ""
        return sm.ListSecretVersionsResponse(
            versions=[self._version_message(secret, v) for v in page],
            next_page_token=token,
            total_size=len(newest_first),
        )

    def _set_state(self, name: str, etag: str, state: Any) -> sm.SecretVersion:
        secret, version = self._version(name)
        if etag and etag != version.etag:
            raise _AbortError(grpc.StatusCode.FAILED_PRECONDITION, "etag mismatch")
        if version.state == State.DESTROYED:
            raise _AbortError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Secret Version [{name}] is in DESTROYED state.",
            )
        version.state = state
        version.etag = _etag()
        if state == State.DESTROYED:
            version.data = b""
            secret.aliases = {k: v for k, v in secret.aliases.items() if v != version.number}
        return self._version_message(secret, version)

    def _disable(self, request: sm.DisableSecretVersionRequest) -> sm.SecretVersion:
        return self._set_state(request.name, request.etag, State.DISABLED)

    def _destroy(self, request: sm.DestroySecretVersionRequest) -> sm.SecretVersion:
        return self._set_state(request.name, request.etag, State.DESTROYED)
