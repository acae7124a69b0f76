"""moto's server (`moto_server -H HOST -p PORT …`) with its requests handled one at a time.

moto's server runs each request on its own thread without any lock around its in-memory
backends, so two conditional writes racing on one item (e.g. a TransactWriteItems and an
UpdateItem) can both pass their conditions there, which real DynamoDB never allows. Serialized,
moto gives DynamoDB's atomicity, and the concurrency tests test our code, not moto's races.

Used by scripts/test.sh, scripts/bench-lib.sh and tests/common (Moto); run it with the Python
of the repository's .venv (which has moto[server]): `.venv/bin/python scripts/moto_serialized.py
-H 127.0.0.1 -p PORT`.
"""
import sys
import threading

import moto.server
from werkzeug.serving import run_simple as werkzeug_run_simple

lock = threading.Lock()


def run_simple(host, port, app, **options):
    def serialized(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    werkzeug_run_simple(host, port, serialized, **options)


moto.server.run_simple = run_simple
moto.server.main(sys.argv[1:])
