"""Serving the app: uvicorn on one machine (the default), or Ray Serve on a Ray cluster (``engine="ray"``):
the same FastAPI app and batching code either way, built inside each replica."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from ..util.errors import UsageError, require
from .core import Limits

ENGINES = ("uvicorn", "ray")
_CONFIG_ENV = "DYMN_SERVE_CONFIG"


@dataclass
class ServeConfig:
    """Everything a replica needs to build the service (JSON-serialisable: it travels to other processes)."""

    model: str | None = None
    weights: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    replicas: int = 1
    engine: str = "uvicorn"
    address: str | None = None  # Ray cluster (engine "ray"); None starts Ray on this machine
    batching: bool = True
    limits: dict = field(default_factory=dict)
    backend: str | None = None  # where the network runs (None: auto, or $DYMN_BACKEND)
    allow_hosts: list[str] = field(default_factory=list)  # more Host names answered when bound to loopback
    ort: str | None = None  # onnxruntime-web dist/ for the in-browser page at /local (None: the pinned CDN)

    def hosts(self) -> list[str] | None:
        """The Host names answered: bound to loopback, only its names (and ``allow_hosts``); else any."""
        from .app import LOOPBACK

        return [*LOOPBACK, *self.allow_hosts] if self.host in LOOPBACK else None

    def check(self) -> None:
        if self.engine not in ENGINES:
            raise UsageError(f"unknown engine {self.engine!r}; choose {' or '.join(ENGINES)}")
        if self.replicas < 1:
            raise UsageError("--replicas must be at least 1")
        if not 0 <= self.port < 65536:
            raise UsageError("--port must be between 0 and 65535")
        lim = Limits(**self.limits)
        if lim.max_upload_mb <= 0 or lim.max_seconds <= 0:
            raise UsageError("--max-upload-mb and --max-seconds must be positive")
        if self.ort is not None:
            from ..web.site import find_ort

            self.ort = str(find_ort(self.ort))


def build_app(config: ServeConfig | dict):
    """The FastAPI app with its model loaded (called in each replica)."""
    from .app import create_app
    from .core import ServiceCore

    if isinstance(config, dict):
        config = ServeConfig(**config)
    core = ServiceCore(config.model, config.weights, Limits(**config.limits), batching=config.batching,
                       backend=config.backend)  # fmt: skip
    return create_app(core, config.hosts(), config.ort)


def app_from_env():
    """uvicorn factory for several worker processes: the configuration comes in the environment."""
    return build_app(json.loads(os.environ[_CONFIG_ENV]))


def serve(config: ServeConfig) -> None:
    """Run the service until interrupted."""
    config.check()
    require("fastapi", "serve", "dymn serve")
    require("uvicorn", "serve", "dymn serve")
    if config.engine == "ray":
        return _serve_ray(config)
    import uvicorn

    from ..util import errors

    # load the model once here first: a bad --model or --weights fails with one line, before binding the port
    app = build_app(config)
    banner = f"dymn: serving {config.model or 'the default model'} on http://{config.host}:{config.port}/"
    print(banner + (" (Ctrl-C stops)" if config.replicas == 1 else f" with {config.replicas} processes"), flush=True)
    try:
        if config.replicas == 1:
            uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False)
        else:
            os.environ[_CONFIG_ENV] = json.dumps(asdict(config))
            uvicorn.run("dymn.service.server:app_from_env", factory=True, host=config.host, port=config.port,
                        workers=config.replicas, log_level="warning", access_log=False)  # fmt: skip
    except OSError as exc:
        raise errors.DymnError(f"cannot serve on {config.host}:{config.port}: {exc.strerror or exc}") from None


def _serve_ray(config: ServeConfig) -> None:
    """Ray Serve: ``replicas`` copies of the same app (each with its model and batching) behind Serve's proxy."""
    require("ray", "serve", "dymn serve --engine ray")
    import time

    import ray
    from ray import serve as rs

    from ..util.raycluster import check_address, connect

    check_address(config.address)
    build_app(config)  # fails here, with one line, for a bad model
    import signal
    import sys

    # SIGTERM (a service manager stopping us) shuts Serve and Ray down as Ctrl-C does, leaving no processes; set
    # again once Ray is up, whose native failure handler takes SIGTERM over and aborts the process (-6)
    def on_term(*_):
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    own = connect(config.address)
    signal.signal(signal.SIGTERM, on_term)
    try:
        rs.start(http_options={"host": config.host, "port": config.port}, logging_config={"log_level": "WARNING"})
        settings = asdict(config)

        def builder():  # run in each replica: Serve tells a builder from an ASGI app by its signature
            return build_app(settings)

        deployment = rs.deployment(rs.ingress(builder)(), name="dymn", num_replicas=config.replicas,
                                   ray_actor_options={"num_cpus": 1}, max_ongoing_requests=64)  # fmt: skip
        rs.run(deployment.bind(), name="dymn", route_prefix="/")
        signal.signal(signal.SIGTERM, on_term)
        print(f"dymn: serving on http://{config.host}:{config.port}/ with Ray Serve, {config.replicas} "
              "replica(s) (Ctrl-C stops)", flush=True)  # fmt: skip
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        status = 130
    except SystemExit as exc:  # SIGTERM
        status = exc.code if isinstance(exc.code, int) else 0
    finally:
        rs.shutdown()
        if own:
            ray.shutdown()
    # Serve and Ray are down; the interpreter's own exit would then abort (SIGABRT) in threads Ray's native
    # libraries leave behind, so a service manager would see a crash: leave now, with the status of the stop
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
