"""Cloud Logging sink: `WriteLogEntries` through google-cloud-logging's generated client.

One call per batch (more if its encoding exceeds `MAX_REQUEST_BYTES`: see there),
`partial_success=True`: valid entries are written even when another entry of
the batch is rejected. Cloud Logging then answers with an error whose details
(`WriteLogEntriesPartialErrors`) map each rejected entry's index to its reason. Each rejected entry
is written again as a stub (same `insertId` and timestamp, the identifying fields and
`_export_error`): the trail shows that the event happened and why its body is missing, and one
bad entry cannot wedge the export. If a stub is rejected too, the batch fails for good.

The request is built as raw protobuf and wrapped, not converted field by field through proto-plus:
that is most of the cost of a 1,000-entry write.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from google.api import monitored_resource_pb2
from google.api_core import exceptions as gexc
from google.cloud.logging_v2.types import WriteLogEntriesPartialErrors, WriteLogEntriesRequest
from google.logging.type import log_severity_pb2

from instantly_guard.audit.entries import ExportEntry, fit_payload
from instantly_guard.errors import BackendError
from instantly_guard.google_errors import is_transient

_log = logging.getLogger("instantly_guard.audit")

_REQUEST = WriteLogEntriesRequest.pb()
_PARTIAL = WriteLogEntriesPartialErrors.pb()
MAX_ENTRY_BYTES = 250 * 1024
"""Encoded size above which an entry is re-truncated here: Cloud Logging's limit is 256 KiB, and
a Struct can be several times larger than its JSON (every number costs 9 bytes plus tags), so the
JSON-based cut in `entries.py` is checked against the real encoding."""
MAX_REQUEST_BYTES = 9 * 1000 * 1000
"""Encoded size above which a batch is sent as several requests. Cloud Logging refuses a request
over 10 MB whole (not per entry, so `partial_success` does not help), and `batching` cuts batches
on JSON estimates, which a Struct can exceed several times: without this, a batch of dense
entries would fail on every run and wedge the export."""
_REQUEST_OVERHEAD = 1024  # log name, resource, flags
_ENTRY_FRAMING = 6  # the `entries` field tag and the length prefix of one entry
_STUB_FIELDS = ("id", "timestamp", "organization_id", "activity_type", "activity", "from_api")


def log_name_for(project: str, log_id: str) -> str:
    """`projects/P/logs/ID` with the log id URL-encoded, as the API requires."""
    return f"projects/{project}/logs/{quote(log_id, safe='')}"


class CloudLoggingSink:
    """A `LogSink` writing to Cloud Logging. `client` is a `LoggingServiceV2Client`."""

    def __init__(
        self,
        client: Any,
        *,
        project: str,
        log_id: str,
        resource: Mapping[str, Any] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._client = client
        self._log_name = log_name_for(project, log_id)
        res = resource or {"type": "global", "labels": {"project_id": project}}
        self._resource = monitored_resource_pb2.MonitoredResource(
            type=res["type"], labels=dict(res.get("labels", {}))
        )
        self._timeout = timeout

    @property
    def log_name(self) -> str:
        return self._log_name

    def _new_request(self) -> Any:
        request = _REQUEST(log_name=self._log_name, partial_success=True)
        request.resource.CopyFrom(self._resource)
        return request

    def _requests(
        self, entries: Sequence[ExportEntry], payloads: Sequence[dict[str, Any]]
    ) -> list[tuple[int, int, Any]]:
        """Raw requests for `entries` in order, as (start, end, request): one unless the encoded
        entries exceed `MAX_REQUEST_BYTES`, then cut there."""
        chunks: list[tuple[int, int, Any]] = []
        request = self._new_request()
        first, size = 0, _REQUEST_OVERHEAD
        for index, (entry, payload) in enumerate(zip(entries, payloads, strict=True)):
            pb = request.entries.add()
            encoded = _fill(pb, entry, payload) + _ENTRY_FRAMING
            if index > first and size + encoded > MAX_REQUEST_BYTES:
                following = self._new_request()
                following.entries.add().CopyFrom(pb)
                del request.entries[-1]
                chunks.append((first, index, request))
                request, first, size = following, index, _REQUEST_OVERHEAD
            size += encoded
        chunks.append((first, len(entries), request))
        return chunks

    def _send(self, request: Any) -> dict[int, str]:
        """Write one raw request; return {index: reason} for entries rejected under partial
        success."""
        try:
            self._client.write_log_entries(
                request=WriteLogEntriesRequest.wrap(request), timeout=self._timeout
            )
        except gexc.GoogleAPICallError as exc:
            rejected = _partial_errors(exc)
            if rejected:
                return rejected
            hint = ""
            if isinstance(exc, gexc.PermissionDenied):
                hint = " (the function's service account needs roles/logging.logWriter)"
            raise BackendError(
                f"Cloud Logging write to {self._log_name} failed: {exc.code} {exc.message}{hint}",
                retryable=is_transient(exc),
            ) from exc
        return {}

    def write(self, entries: Sequence[ExportEntry]) -> None:
        if not entries:
            return
        # `e.payload` for each entry, parsed in one call (one C parse instead of one per entry).
        payloads: list[dict[str, Any]] = json.loads(
            "[" + ",".join([e.payload_json for e in entries]) + "]"
        )
        for first, end, request in self._requests(entries, payloads):
            self._write_chunk(entries[first:end], payloads[first:end], request)

    def _write_chunk(
        self, entries: Sequence[ExportEntry], payloads: Sequence[dict[str, Any]], request: Any
    ) -> None:
        rejected = self._send(request)
        if not rejected:
            return
        failed = [entries[i] for i in sorted(rejected)]
        for index in sorted(rejected):
            _log.warning(
                "Cloud Logging rejected an audit entry; writing a stub in its place",
                extra={
                    "fields": {"insert_id": entries[index].insert_id, "reason": rejected[index]}
                },
            )
        stubs = [
            {
                **{k: payloads[i][k] for k in _STUB_FIELDS if k in payloads[i]},
                "_export_error": rejected[i],
            }
            for i in sorted(rejected)
        ]
        still: dict[int, str] = {}
        for _, _, stub_request in self._requests(failed, stubs):
            still.update(self._send(stub_request))
        if still:
            raise BackendError(
                f"Cloud Logging rejected {len(still)} audit entries even as stubs: "
                + "; ".join(sorted(set(still.values())))[:500],
                retryable=False,
            )

    def describe(self) -> str:
        return self._log_name

    def close(self) -> None:
        self._client.transport.close()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _fill(pb: Any, entry: ExportEntry, payload: dict[str, Any]) -> int:
    """Set a raw `LogEntry` from `entry`, re-cutting a payload whose encoding is too large;
    return its encoded size."""
    pb.insert_id = entry.insert_id
    timestamp = entry.timestamp
    if timestamp.tzinfo is None:
        pb.timestamp.FromDatetime(timestamp)  # naive: taken as UTC
    else:
        delta = timestamp - _EPOCH  # exact, unlike a float timestamp()
        pb.timestamp.seconds = delta.days * 86_400 + delta.seconds
        pb.timestamp.nanos = delta.microseconds * 1000
    pb.severity = _severity_number(entry.severity)
    pb.labels.update(entry.labels)
    pb.json_payload.update(payload)
    size: int = pb.ByteSize()
    if size <= MAX_ENTRY_BYTES:
        return size
    # Oversized (rare): only now is the payload's JSON size worth computing.
    budget = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
    while pb.ByteSize() > MAX_ENTRY_BYTES and budget > 1024:
        budget //= 2
        pb.ClearField("json_payload")
        pb.json_payload.update(fit_payload(payload, budget)[0])
    return int(pb.ByteSize())


_SEVERITIES: dict[str, int] = {}


def _severity_number(name: str) -> int:
    number = _SEVERITIES.get(name)
    if number is None:
        number = _SEVERITIES[name] = log_severity_pb2.LogSeverity.Value(name)
    return number


def _partial_errors(exc: gexc.GoogleAPICallError) -> dict[int, str]:
    for detail in exc.details or ():
        if hasattr(detail, "Is") and detail.Is(_PARTIAL.DESCRIPTOR):
            partial = _PARTIAL()
            detail.Unpack(partial)
            return {
                int(index): f"{status.code} {status.message}".strip()
                for index, status in partial.log_entry_errors.items()
            }
    return {}


def read_entries(client: Any, project: str, log_id: str) -> Iterator[dict[str, Any]]:
    """Every entry of one log as LogEntry JSON (`insertId`, `labels`, `jsonPayload`, ...), oldest
    first: what `integrity.verify_chain` reads back. `client` is a `LoggingServiceV2Client`."""
    from google.cloud.logging_v2.types import LogEntry
    from google.protobuf import json_format

    request = {
        "resource_names": [f"projects/{project}"],
        "filter": f'logName="{log_name_for(project, log_id)}"',
        "order_by": "timestamp asc",
        "page_size": 1000,
    }
    try:
        for entry in client.list_log_entries(request=request):
            yield json_format.MessageToDict(LogEntry.pb(entry))
    except gexc.GoogleAPICallError as exc:
        raise BackendError(
            f"Cloud Logging read of {log_name_for(project, log_id)} failed: {exc.code} "
            f"{exc.message}",
            retryable=is_transient(exc),
        ) from exc
