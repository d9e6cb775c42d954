"""The secret store port: the same semantics from the local files and from Secret Manager
(the real google-cloud-secret-manager client over gRPC to the in-process stand-in)."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from instantly_guard.errors import BackendError, ConflictError
from instantly_guard.secret import Secret
from instantly_guard.secrets.base import (
    SecretNotFoundError,
    SecretStore,
    VersionState,
    VersionUnavailableError,
)
from instantly_guard.secrets.gcp import GcpSecretStore
from instantly_guard.secrets.local import LocalSecretStore
from instantly_guard.secrets.provider import secret_key_provider
from standins.secret_manager import SecretManagerStandIn

LABELS = {"instantly_guard": "managed"}


@pytest.fixture
def store(make_store: Callable[[str], Any], backend: str) -> SecretStore:
    s: SecretStore = make_store(backend)
    s.create_secret("k", labels=LABELS, annotations={"instantly-guard.kind": "api-key"})
    return s


def test_versions_are_numbered_and_readable_by_number_alias_and_latest(store: SecretStore) -> None:
    assert store.add_version("k", Secret("value-one-1")) == "1"
    assert store.add_version("k", Secret("value-two-2")) == "2"
    meta = store.get("k")
    store.update("k", aliases={"current": "1"}, annotations=meta.annotations, etag=meta.etag)

    assert store.access("k", "1").reveal() == "value-one-1"
    assert store.access("k", "current").reveal() == "value-one-1"
    assert store.access("k", "latest").reveal() == "value-two-2"
    assert store.access("k").reveal() == "value-two-2"
    assert [v.version for v in store.list_versions("k")] == ["1", "2"]


def test_adding_a_version_leaves_the_etag_alone(store: SecretStore) -> None:
    etag = store.get("k").etag
    store.add_version("k", Secret("value-one-1"))
    assert store.get("k").etag == etag


def test_a_stale_etag_loses_the_compare_and_swap(store: SecretStore) -> None:
    store.add_version("k", Secret("value-one-1"))
    stale = store.get("k")
    fresh = store.update("k", aliases={"current": "1"}, annotations={"a": "1"}, etag=stale.etag)
    assert fresh.etag != stale.etag

    with pytest.raises(ConflictError):
        store.update("k", aliases={}, annotations={"a": "2"}, etag=stale.etag)
    assert store.get("k").annotations == {"a": "1"}
    assert store.get("k").aliases == {"current": "1"}


def test_update_replaces_aliases_and_annotations_but_not_labels(store: SecretStore) -> None:
    store.add_version("k", Secret("value-one-1"))
    meta = store.get("k")
    updated = store.update("k", aliases={"pending": "1"}, annotations={"x": "y"}, etag=meta.etag)
    assert dict(updated.aliases) == {"pending": "1"}
    assert dict(updated.annotations) == {"x": "y"}
    assert dict(updated.labels) == LABELS


def test_disabled_and_destroyed_versions_cannot_be_read(store: SecretStore) -> None:
    store.add_version("k", Secret("value-one-1"))
    store.add_version("k", Secret("value-two-2"))
    store.disable_version("k", "1")
    store.disable_version("k", "1")  # idempotent
    with pytest.raises(VersionUnavailableError):
        store.access("k", "1")
    store.destroy_version("k", "1")
    store.destroy_version("k", "1")  # idempotent
    store.disable_version("k", "1")  # a destroyed version stays destroyed
    with pytest.raises(VersionUnavailableError):
        store.access("k", "1")
    states = {v.version: v.state for v in store.list_versions("k")}
    assert states == {"1": VersionState.DESTROYED, "2": VersionState.ENABLED}


def test_missing_things_are_not_found(store: SecretStore) -> None:
    with pytest.raises(SecretNotFoundError):
        store.get("nope")
    with pytest.raises(SecretNotFoundError):
        store.access("k", "latest")  # no version yet
    with pytest.raises(SecretNotFoundError):
        store.access("k", "current")
    with pytest.raises(SecretNotFoundError):
        store.add_version("nope", Secret("value-one-1"))


def test_creating_twice_conflicts(store: SecretStore) -> None:
    with pytest.raises(ConflictError):
        store.create_secret("k", labels={}, annotations={})


def test_delete_is_guarded_by_the_etag_and_removes_every_version(store: SecretStore) -> None:
    store.add_version("k", Secret("value-one-1"))
    stale = store.get("k").etag
    store.update("k", aliases={"current": "1"}, annotations={}, etag=stale)
    with pytest.raises(ConflictError):
        store.delete_secret("k", etag=stale)
    store.delete_secret("k", etag=store.get("k").etag)
    with pytest.raises(SecretNotFoundError):
        store.get("k")
    assert list(store.list_secrets()) == []
    with pytest.raises(SecretNotFoundError):
        store.delete_secret("k", etag="x")
    store.create_secret("k", labels=LABELS, annotations={})  # the name is free again
    assert store.list_versions("k") == []


def test_listing_filters_by_label(store: SecretStore) -> None:
    store.create_secret("other", labels={"team": "x"}, annotations={})
    assert [m.name for m in store.list_secrets(LABELS)] == ["k"]
    assert sorted(m.name for m in store.list_secrets()) == ["k", "other"]


def test_invalid_names_aliases_and_annotations_are_refused(store: SecretStore) -> None:
    with pytest.raises(ValueError, match="secret name"):
        store.get("../escape")
    meta = store.get("k")
    with pytest.raises(ValueError, match="alias"):
        store.update("k", aliases={"latest": "1"}, annotations={}, etag=meta.etag)
    with pytest.raises(ValueError, match="annotation"):
        store.update("k", aliases={}, annotations={"-bad": "x"}, etag=meta.etag)


def test_the_key_provider_reads_current_not_latest(store: SecretStore) -> None:
    store.add_version("k", Secret("tested-key-1"))
    meta = store.get("k")
    store.update("k", aliases={"current": "1"}, annotations={}, etag=meta.etag)
    store.add_version("k", Secret("untested-key-2"))  # `latest`, but never made current
    now = [0.0]
    provider = secret_key_provider(store, "k", ttl=60, clock=lambda: now[0])
    assert provider().reveal() == "tested-key-1"
    meta = store.get("k")
    store.update("k", aliases={"current": "2"}, annotations={}, etag=meta.etag)
    assert provider().reveal() == "tested-key-1"  # cached
    now[0] += 2
    assert provider(refresh=True).reveal() == "untested-key-2"


# ---- Secret Manager specifics: failures through the real client ---------------------------


@pytest.fixture
def gcp(sm_standin: SecretManagerStandIn) -> tuple[GcpSecretStore, SecretManagerStandIn]:
    store = GcpSecretStore("p", client=sm_standin.client(), timeout=5)
    store.create_secret("k", labels=LABELS, annotations={})
    return store, sm_standin


@pytest.mark.gcp
def test_a_failed_add_is_a_retryable_backend_error(gcp: Any) -> None:
    store, standin = gcp
    standin.fail_next("AddSecretVersion", grpc.StatusCode.INTERNAL)
    with pytest.raises(BackendError) as info:
        store.add_version("k", Secret("value-one-1"))
    assert info.value.retryable
    assert store.list_versions("k") == []
    assert store.add_version("k", Secret("value-one-1")) == "1"


@pytest.mark.gcp
def test_a_permission_error_is_not_retryable(gcp: Any) -> None:
    store, standin = gcp
    standin.fail_next("GetSecret", grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(BackendError) as info:
        store.get("k")
    assert not info.value.retryable


@pytest.mark.gcp
def test_the_etag_and_update_mask_reach_the_service(gcp: Any) -> None:
    store, standin = gcp
    store.add_version("k", Secret("value-one-1"))
    meta = store.get("k")
    standin.reset_calls()
    store.update("k", aliases={"current": "1"}, annotations={"a": "b"}, etag=meta.etag)
    assert standin.calls == {"UpdateSecret": 1}
    with pytest.raises(ConflictError, match="etag"):
        store.update("k", aliases={}, annotations={}, etag=meta.etag)


@pytest.mark.gcp
def test_payloads_carry_a_checksum(gcp: Any) -> None:
    store, standin = gcp
    store.add_version("k", Secret("value-one-1"))
    assert standin.payload("projects/p/secrets/k", 1) == b"value-one-1"
    assert store.access("k", "1").reveal() == "value-one-1"


# ---- the local store: permissions, threads and processes ---------------------------------


def test_local_values_are_private_files(tmp_path: Path) -> None:
    store = LocalSecretStore(tmp_path / "secrets")
    store.create_secret("k", labels={}, annotations={})
    store.add_version("k", Secret("value-one-1"))
    value_file = tmp_path / "secrets" / "k" / "versions" / "1"
    assert stat.S_IMODE(value_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "secrets" / "k").stat().st_mode) == 0o700


def _bump(root: str, rounds: int) -> int:
    """Increment a counter annotation `rounds` times with compare-and-swap; return conflicts."""
    store = LocalSecretStore(Path(root))
    conflicts = 0
    for _ in range(rounds):
        while True:
            meta = store.get("k")
            count = int(meta.annotations.get("count", "0"))
            try:
                store.update("k", aliases={}, annotations={"count": str(count + 1)}, etag=meta.etag)
                break
            except ConflictError:
                conflicts += 1
    return conflicts


def test_local_compare_and_swap_holds_across_threads(tmp_path: Path) -> None:
    root = tmp_path / "secrets"
    LocalSecretStore(root).create_secret("k", labels={}, annotations={})
    threads = [threading.Thread(target=_bump, args=(str(root), 25)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert LocalSecretStore(root).get("k").annotations["count"] == "100"


_BUMP_SCRIPT = """
import sys
from pathlib import Path
from instantly_guard.errors import ConflictError
from instantly_guard.secrets.local import LocalSecretStore

store = LocalSecretStore(Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    while True:
        meta = store.get("k")
        count = int(meta.annotations.get("count", "0"))
        try:
            store.update("k", aliases={}, annotations={"count": str(count + 1)}, etag=meta.etag)
            break
        except ConflictError:
            pass
"""


def test_local_compare_and_swap_holds_across_processes(tmp_path: Path) -> None:
    root = tmp_path / "secrets"
    LocalSecretStore(root).create_secret("k", labels={}, annotations={})
    workers = [
        subprocess.Popen([sys.executable, "-c", _BUMP_SCRIPT, str(root), "20"]) for _ in range(3)
    ]
    assert [w.wait(timeout=60) for w in workers] == [0, 0, 0]
    assert LocalSecretStore(root).get("k").annotations["count"] == "60"


def _sized(total: int) -> dict[str, str]:
    """Annotations whose keys plus values take exactly `total` bytes."""
    key = "instantly-guard.padding"
    return {key: "x" * (total - len(key))}


def test_annotations_must_total_strictly_less_than_16_kib(store: SecretStore) -> None:
    meta = store.create_secret("full", labels=LABELS, annotations=_sized(16 * 1024 - 1))
    with pytest.raises(ValueError, match="less than 16384"):
        store.update("full", aliases={}, annotations=_sized(16 * 1024), etag=meta.etag)
    with pytest.raises(ValueError, match="less than 16384"):
        store.create_secret("over", labels=LABELS, annotations=_sized(16 * 1024))
    assert store.get("full").annotations == _sized(16 * 1024 - 1)


def test_the_stand_in_refuses_annotations_of_16_kib_as_secret_manager_does(
    sm_standin: SecretManagerStandIn,
) -> None:
    from google.api_core import exceptions
    from google.cloud import secretmanager_v1 as sm
    from google.protobuf import field_mask_pb2

    client = sm_standin.client()
    parent = "projects/demo-project"
    automatic = sm.Replication(automatic=sm.Replication.Automatic())
    with pytest.raises(exceptions.InvalidArgument, match="less than 16KiB"):
        client.create_secret(
            parent=parent,
            secret_id="big",
            secret=sm.Secret(replication=automatic, annotations=_sized(16 * 1024)),
        )
    created = client.create_secret(
        parent=parent,
        secret_id="fits",
        secret=sm.Secret(replication=automatic, annotations=_sized(16 * 1024 - 1)),
    )
    mask = field_mask_pb2.FieldMask(paths=["annotations"])
    with pytest.raises(exceptions.InvalidArgument):
        client.update_secret(
            secret=sm.Secret(name=created.name, annotations=_sized(16 * 1024)), update_mask=mask
        )
    assert dict(client.get_secret(name=created.name).annotations) == _sized(16 * 1024 - 1)
