"""``dymn serve``: the HTTP service (FastAPI on uvicorn or Ray Serve)."""

from __future__ import annotations

from ..hub.loader import DEFAULT_MODEL
from .common import backend_arg, backend_of, command


def register(sub) -> None:
    sv = command(sub, "serve", "a tagging service: JSON API and a web page (FastAPI; uvicorn or Ray Serve)", cmd_serve)
    sv.add_argument("--model", default=None,
                    help=f"registry name or checkpoint (default {DEFAULT_MODEL}; a,b,c for an ensemble)")  # fmt: skip
    sv.add_argument("--weights", default=None, help="local weights (see `dymn tag --help`)")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (0.0.0.0: every interface; only on networks you trust)")  # fmt: skip
    sv.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another host name this service answers to when bound to loopback (repeatable; by default "
        "only 127.0.0.1, localhost and ::1: a web page elsewhere cannot reach it by DNS rebinding)",
    )
    sv.add_argument("--port", type=int, default=8000, help="TCP port")
    sv.add_argument("--replicas", type=int, default=1, help="copies of the model serving requests")
    sv.add_argument("--engine", choices=("uvicorn", "ray"), default="uvicorn",
                    help="uvicorn: processes on this machine; ray: Ray Serve (replicas across a cluster)")  # fmt: skip
    sv.add_argument("--address", default=None, help="Ray cluster for --engine ray (default: Ray on this machine)")
    sv.add_argument("--max-upload-mb", type=float, default=50.0, help="larger uploads get 413")
    sv.add_argument("--max-seconds", type=float, default=600.0, help="longer audio gets 413")
    sv.add_argument("--ort", default=None, metavar="DIR",
                    help="onnxruntime-web dist/ for the in-browser page at /local (npm install onnxruntime-web; "
                         "default: loaded from a pinned CDN URL)")  # fmt: skip
    sv.add_argument("--no-batching", action="store_true", help="one clip per model call (for comparisons)")
    backend_arg(sv)


def cmd_serve(args) -> int:
    from ..service.server import ServeConfig, serve

    serve(ServeConfig(model=args.model, weights=args.weights, host=args.host, port=args.port,
                      replicas=args.replicas, engine=args.engine, address=args.address,
                      batching=not args.no_batching, backend=backend_of(args), allow_hosts=args.allow_host,
                      ort=args.ort,
                      limits={"max_upload_mb": args.max_upload_mb, "max_seconds": args.max_seconds}))  # fmt: skip
    return 0
