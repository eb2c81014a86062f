"""A moto server that handles one request at a time, on 127.0.0.1.

moto's backends are not thread-safe, and ``moto_server`` serves each request on its own thread: two
conditional writes to one item may then both succeed, which would hide exactly the races the
concurrency tests look for. Served on one thread, each request runs alone, as DynamoDB's own
conditional writes do. Clients must not long-poll (``WaitTimeSeconds``): it would hold the server."""

from __future__ import annotations

import argparse
import logging

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", args.port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
