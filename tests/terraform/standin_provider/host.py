"""One long-lived process that serves every stand-in provider instance of a test session.

Terraform starts a provider process about ten times per plan; a Python process that imports
gRPC and reads the schemas costs about half a second of CPU each time, which made a matrix of
plans take minutes on a small machine. Here the process Terraform starts is a short shell
script (`launcher_script`): it makes a FIFO, writes one request line (`<provider> <fifo> <tls>`)
to the host's request FIFO, and execs `cat` on its own FIFO. The host starts a provider instance
(plugin.start: its own gRPC server, port and provider configuration), writes the go-plugin
handshake line into that FIFO, and closes it when Terraform calls Shutdown, so `cat` and with it
the provider process end exactly when Terraform expects. What Terraform sees is unchanged: an
executable that prints the handshake on stdout and serves tfplugin5 until told to stop.

`python -m tests.terraform.standin_provider.host <folder>` serves until its stdin closes.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
from pathlib import Path

from tests.terraform.standin_provider.plugin import (
    MAGIC_COOKIE,
    MAGIC_COOKIE_KEY,
    load_schemas,
    start,
)

REQUESTS = "requests"


def launcher_script(provider: str, folder: Path) -> str:
    """The `terraform-provider-<provider>` a dev_overrides folder holds when a host runs."""
    requests = shlex.quote(str(folder / REQUESTS))
    return f"""#!/bin/sh
if [ "${{{MAGIC_COOKIE_KEY}:-}}" != "{MAGIC_COOKIE}" ]; then
  echo "This binary is a plugin. Terraform runs it; it is not meant to be run directly." >&2
  exit 1
fi
reply=$(mktemp -u {shlex.quote(str(folder))}/reply.XXXXXXXX) && mkfifo "$reply" || exit 1
printf '%s %s %s\\n' {shlex.quote(provider)} "$reply" "${{PLUGIN_CLIENT_CERT:+tls}}" > {requests}
exec cat "$reply"
"""


def _instance(provider: str, reply: str, tls: bool) -> None:
    stop = threading.Event()
    try:
        server, handshake = start(provider, stop, tls=tls)
    except Exception as exc:
        print(f"stand-in host: {provider}: {exc!r}", file=sys.stderr, flush=True)
        with open(reply, "w") as fifo:
            os.unlink(reply)
        return
    with open(reply, "w") as fifo:
        os.unlink(reply)
        fifo.write(handshake + "\n")
        fifo.flush()
        stop.wait()
        server.stop(grace=0.2).wait()
    # Closing the FIFO ends the launcher's cat: the provider process exits as after a Shutdown.


def serve(folder: Path) -> None:
    for provider in ("google", "google-beta", "archive", "time"):
        load_schemas(provider)
    requests = folder / REQUESTS
    os.mkfifo(requests)
    # Read-write, so the FIFO never reports end-of-file between two launchers' writes.
    fd = os.open(requests, os.O_RDWR)
    print("ready", flush=True)

    def listen() -> None:
        with os.fdopen(fd, "r") as lines:
            for line in lines:
                provider, reply, *rest = line.split()
                threading.Thread(
                    target=_instance, args=(provider, reply, rest == ["tls"]), daemon=True
                ).start()

    threading.Thread(target=listen, daemon=True).start()
    sys.stdin.read()  # the harness closes our stdin (or ends) to stop the host


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
