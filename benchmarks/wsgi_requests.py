"""Send deliveries through a function's WSGI app in process, as gunicorn would hand them over.

    python -m benchmarks.wsgi_requests TARGET SOURCE COUNT

`bench_webhook` runs this under valgrind twice, with two counts: the difference in instructions
divided by the difference in counts is what one request costs, less the start-up (the same
bodies are built either way). The environment configures the receiver as for the server.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from functions_framework import create_app

from benchmarks.bench_webhook import SECRET, _payloads
from instantly_guard.logs import flush_lines
from instantly_guard.webhook.testing import wsgi_environ

BODIES = 1400  # at least the larger count the benchmark asks for, plus the warm-up
WARM_UP = 100


def _environ(body: bytes) -> dict[str, Any]:
    return wsgi_environ(
        body,
        HTTP_HOST="127.0.0.1:8080",
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH=str(len(body)),
        HTTP_X_WEBHOOK_SECRET=SECRET,
    )


def main(target: str, source: str, count: int) -> None:
    app = create_app(target, source)
    environs = [_environ(body) for body in _payloads(BODIES, 10**7)][: WARM_UP + count]
    with open(os.devnull, "w") as sink:
        os.dup2(sink.fileno(), 1)  # the receiver's lines, as the server's stdout would take them

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"the function answered {status}")

    for environ in environs:
        answer = app(environ, start_response)
        b"".join(answer)
        answer.close()
    flush_lines()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
