"""`bench serve TARGET [--variant ID]`: resolve what to serve (a run directory's variant, or a model folder),
then run the app in this process until Ctrl-C."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from bench.common.errors import BenchError


def serve_command(args) -> int:
    from pydantic import ValidationError

    from bench.serve.extra import require_serve_extra
    from bench.serve.process import serve
    from bench.serve.spec import from_artifact_dir, from_run_dir

    require_serve_extra("bench serve")
    target = Path(args.target)
    try:
        options = {"batching": {"max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms},
                   "limits": {"max_body_bytes": args.max_body_bytes, "max_texts": args.max_texts,
                              "max_queue": args.max_queue}}
        if args.variant:
            spec = from_run_dir(target, args.variant, args.seed, **options)
            if args.threads:
                spec = spec.model_copy(update={"variant": dataclasses.replace(spec.variant, threads=args.threads)})
        elif (target / "run.json").is_file():
            raise BenchError(f"{target} is a run directory: say which variant to serve with --variant ID")
        elif not target.is_dir():
            raise BenchError(f"{target}: no such run directory or model folder")
        else:
            spec = from_artifact_dir(target, args.format, args.precision, args.device, args.threads or 1,
                                     args.max_length, args.pair, **options)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BenchError(f"--{str(err['loc'][-1]).replace('_', '-')}: {err['msg']}") from None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("bench").warning("binding to %s: the service has no authentication and is reachable "
                                           "from other machines", args.host)
    log = logging.getLogger("bench.serve")
    try:
        serve(spec, args.host, args.port, on_ready=lambda url: log.info(
            "serving %s (%s %s, %d threads, batching %s) on %s: POST /predict, GET /health; Ctrl-C stops",
            spec.variant_id, spec.format, spec.precision, spec.threads, spec.batching.label, url))
    except KeyboardInterrupt:  # uvicorn shut down cleanly, then re-raised the signal
        pass
    log.info("stopped")
    return 0
