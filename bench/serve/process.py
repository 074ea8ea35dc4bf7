"""`python -m bench.serve.process SPEC.json [--host H --port P | --fd N]`: load the model, then serve it
with uvicorn until SIGINT/SIGTERM. `--fd`: an already-bound listening socket inherited from the parent
(bench/scenarios/server.py), so the port is known before the child starts and no other process can take it."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

from bench.serve.spec import ServeSpec

log = logging.getLogger("bench.serve")


def serve(spec: ServeSpec, host: str = "127.0.0.1", port: int = 8000, fd: int | None = None,
          on_ready=None) -> None:
    import uvicorn

    from bench.serve.app import create_app
    from bench.serve.model import Predictor

    predictor = Predictor(spec)  # before the socket answers: /health means the model is loaded
    app = create_app(spec, predictor)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=5, server_header=False)
    server = uvicorn.Server(config)
    if fd is not None:
        sockets = [socket.socket(fileno=fd)]
    else:
        try:
            sockets = [socket.create_server((host, port), backlog=2048)]
        except OSError as exc:
            from bench.common.errors import BenchError

            raise BenchError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from None
    if on_ready:
        host_, port_ = sockets[0].getsockname()[:2]
        on_ready(f"http://{host_}:{port_}")
    server.run(sockets=sockets)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve.process")
    parser.add_argument("spec", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fd", type=int)
    parser.add_argument("--cpus", help="pin to these cores (comma-separated) before loading the model")
    args = parser.parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.fd is not None:  # started by `bench run`: never outlive it
        from bench.common.lifetime import die_with_parent

        die_with_parent()
    spec = ServeSpec.model_validate_json(args.spec.read_bytes())
    serve(spec, args.host, args.port, args.fd, on_ready=lambda url: log.info("serving %s on %s", spec.variant_id, url))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
