"""The webhook must not import Secret Manager or Cloud Logging client libraries, and builds lazily."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from webhook_support import MAIN, ROOT, SECRET

PROBE = r"""
import json, sys
import functions_framework
app = functions_framework.create_app(target="receive_webhook", source=sys.argv[1])
main = sys.modules["main"]
at_import = {"built": main._receiver.built,
             "pubsub": "google.cloud.pubsub_v1" in sys.modules}
client = app.test_client()
response = client.post("/", data=b"{}", headers={"Content-Type": "application/json"})
heavy = sorted(m for m in sys.modules if m.startswith(("google.cloud.secretmanager", "google.cloud.logging")))
print(json.dumps({"at_import": at_import, "status": response.status_code, "heavy": heavy,
                  "pubsub_after": "google.cloud.pubsub_v1" in sys.modules}))
"""


def run_probe(env_extra: dict[str, str]) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INSTANTLY_", "WEBHOOK_", "GUARD_", "PUBSUB_"))
    }
    env.update(env_extra)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(MAIN)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_gcp_backend_imports_pubsub_only_and_only_at_first_request(tmp_path):
    result = run_probe(
        {
            "GUARD_BACKEND": "gcp",
            "INSTANTLY_WEBHOOK_SECRET": SECRET,
            "WEBHOOK_PUBSUB_TOPIC": "projects/p/topics/t",
            "PUBSUB_EMULATOR_HOST": "127.0.0.1:9",
        }
    )

    assert result["at_import"] == {"built": False, "pubsub": False}
    assert result["status"] == 401
    assert result["heavy"] == []
    assert result["pubsub_after"] is True


def test_local_backend_never_imports_google_clients(tmp_path):
    result = run_probe(
        {
            "GUARD_BACKEND": "local",
            "GUARD_STATE_DIR": str(tmp_path),
            "INSTANTLY_WEBHOOK_SECRET": SECRET,
        }
    )

    assert result["heavy"] == []
    assert result["pubsub_after"] is False
