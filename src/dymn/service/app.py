"""The HTTP API and the web page (FastAPI): the same app whichever engine serves it."""

import asyncio
import threading
from importlib import resources

# at module level, not in create_app: FastAPI reads the endpoints' annotations (Request, Query) by name
from fastapi import FastAPI, Query, Request

from ..inference.events import MAX_MEDIAN
from ..inference.timelines import MAX_WINDOW, MIN_HOP, MIN_WINDOW
from .core import API_VERSION, Limits, ServiceCore, ServiceError


class BodyLimit:
    """ASGI middleware: a request body over the limit gets 413 before it is read in full (by its
    Content-Length, or by counting the bytes of a chunked upload)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _too_large(send, self.max_bytes)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLargeError
            return message

        try:
            return await self.app(scope, counted, send)
        except _BodyTooLargeError:
            return await _too_large(send, self.max_bytes)


class _BodyTooLargeError(Exception):
    pass


async def _too_large(send, max_bytes: int) -> None:
    await _answer(send, 413, f"the upload is larger than this service takes ({max_bytes / 2**20:g} MB)")


async def _answer(send, status: int, message: str) -> None:
    """An error answered by a middleware, as the endpoints answer theirs."""
    import json

    body = json.dumps({"error": {"status": status, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"x-content-type-options", b"nosniff")],
        }
    )  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """ASGI middleware: ``X-Content-Type-Options: nosniff`` on every response, and (``hosts``) only requests
    whose Host header names this service: a page on another site cannot reach a service bound to loopback
    through a DNS name that it points at 127.0.0.1 (DNS rebinding)."""

    def __init__(self, app, hosts: list[str] | None = None):
        self.app = app
        self.hosts = {h.lower() for h in hosts} if hosts else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.hosts is not None:
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
            name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
            if name not in self.hosts:
                return await _answer(
                    send,
                    421,
                    f"this service answers only to {', '.join(sorted(self.hosts))}; "
                    "start it with --allow-host NAME to be reached by another name",
                )

        async def sending(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]}
            await send(message)

        return await self.app(scope, receive, sending)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def page_policy(page: str) -> str:
    """The page's content security policy: its own inline script and style by their hashes, nothing inline
    besides, nothing from elsewhere."""
    import base64
    import hashlib
    import re

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)

    return (f"default-src 'self'; script-src {hashes('script')}; style-src {hashes('style')}; "
            "img-src 'self' blob: data:; media-src 'self' blob: mediastream:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")  # fmt: skip


def create_app(core: ServiceCore, hosts: list[str] | None = None, ort: str | None = None):
    """The FastAPI app around ``core``: ``/v1/tag``, ``/v1/timeline``, ``/v1/embed``, ``/v1/models``,
    ``/healthz``, the OpenAPI schema at ``/openapi.json``, the web page at ``/`` and the in-browser page at
    ``/local/`` (onnxruntime-web from ``ort``, a local ``dist/``, or the pinned CDN). ``hosts``: the only Host
    names it answers (None: any)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
    from starlette.exceptions import HTTPException

    from .._version import __version__
    from .local import MEDIA_TYPES, LocalSite

    # no /docs: its page loads scripts from a CDN, and the service must work offline (the schema is there)
    app = FastAPI(title="dymn", version=__version__, docs_url=None, redoc_url=None,
                  description="Audio tagging with MN / DyMN: tags, timelines with events, embeddings.")  # fmt: skip
    limits: Limits = core.limits

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)

    @app.exception_handler(ServiceError)
    async def _service_error(request, exc: ServiceError):
        return error(exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "body"))
        return error(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(HTTPException)
    async def _http(request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):  # a bug answers 500 and the service stays up
        import logging

        logging.getLogger("dymn.service").exception("unexpected error")
        return error(500, f"internal error: {type(exc).__name__}")

    async def upload(request: Request) -> tuple[bytes, str]:
        """The audio of a request: a multipart form's first file, or the raw body; a body that has not arrived
        in full within the limit is refused (a stalled client must not hold a connection and its memory)."""
        try:
            return await asyncio.wait_for(_upload(request), limits.upload_timeout_s)
        except asyncio.TimeoutError:
            raise ServiceError(408, f"the upload did not arrive within {limits.upload_timeout_s:g} s") from None

    async def _upload(request: Request) -> tuple[bytes, str]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=8)
            files = [v for v in form.values() if hasattr(v, "read")]
            if not files:
                raise ServiceError(422, "the form holds no file; send it as the 'file' field")
            f = files[0]
            return await f.read(), _safe_name(f.filename or "upload")
        data = await request.body()
        return data, _safe_name(request.headers.get("x-filename") or "upload")

    def query_top_k(top_k: int) -> int:
        if top_k < 0:
            raise ServiceError(422, "top_k: must be 0 (all classes) or positive")
        return top_k

    async def watched(request: Request, work):
        """``await work(stop)``; ``stop`` is set when the client disconnects, so that long work ends early."""
        stop = threading.Event()

        async def watch():
            while not await request.is_disconnected():
                await asyncio.sleep(0.25)
            stop.set()

        watcher = asyncio.create_task(watch())
        try:
            return await work(stop)
        finally:
            watcher.cancel()

    responses = {409: {"description": "the endpoint does not fit the model served (tagger or detector)"},
                 413: {"description": "upload or audio too long"}, 415: {"description": "not audio"},
                 422: {"description": "bad parameters or undecodable audio"}}  # fmt: skip
    audio_body = {"requestBody": {"content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}  # fmt: skip

    @app.post(f"/{API_VERSION}/tag", responses=responses, openapi_extra=audio_body,
              summary="Top tags of an audio file (as `dymn tag FILE --format json`)")  # fmt: skip
    async def tag(request: Request, top_k: int = Query(10, ge=0, description="tags to return; 0 = all classes")):
        data, name = await upload(request)
        return await core.tag(data, name, query_top_k(top_k))

    @app.post(f"/{API_VERSION}/timeline", responses=responses, openapi_extra=audio_body,
              summary="Windows and events over time (as `dymn timeline FILE --format json`)")  # fmt: skip
    async def timeline(request: Request,
                       window: float | None = Query(None, ge=MIN_WINDOW, le=MAX_WINDOW,
                                                    description="seconds (default 10; a detector: its 40 ms frames)"),
                       hop: float | None = Query(None, ge=MIN_HOP, description="seconds (default 1)"),
                       threshold: float = Query(0.5, ge=0, le=1),
                       median: int | None = Query(None, ge=1, le=MAX_MEDIAN,
                                                  description="windows (default 3; a detector's frames: 9)"),
                       top_k: int = Query(10, ge=0, description="classes per window; 0 = all")):  # fmt: skip
        data, name = await upload(request)
        return await watched(request, lambda stop: core.timeline(data, name, window, hop, threshold, median,
                                                                 query_top_k(top_k), stop))  # fmt: skip

    @app.post(
        f"/{API_VERSION}/detect",
        responses=responses,
        openapi_extra=audio_body,
        summary="Sound events every 40 ms with a frame-level detector (as `dymn detect FILE --format json`)",
    )
    async def detect(request: Request, threshold: float = Query(0.5, ge=0, le=1),
                     median: int = Query(9, ge=1, le=MAX_MEDIAN,
                                         description="median filter over N frames (odd)")):  # fmt: skip
        data, name = await upload(request)
        return await watched(request, lambda stop: core.detect(data, name, threshold, median, stop))

    @app.post(f"/{API_VERSION}/embed", responses=responses, openapi_extra=audio_body,
              summary="The clip embedding (as `dymn embed FILE`)")  # fmt: skip
    async def embed(request: Request):
        data, name = await upload(request)
        return await core.embed(data, name)

    @app.get(f"/{API_VERSION}/models", summary="The model this service runs")
    async def models():
        return {"models": [core.describe()], "limits": {"max_upload_mb": limits.max_upload_mb,
                                                        "max_seconds": limits.max_seconds}}  # fmt: skip

    @app.get("/healthz", summary="Liveness")
    async def healthz():
        batcher = core.batcher  # None for a detector: each file is its own batch of 10 s chunks
        return {"status": "ok", "model": core.info.name, "batches": batcher.batches if batcher else 0,
                "clips": batcher.clips if batcher else 0}  # fmt: skip

    page = resources.files("dymn.service").joinpath("static/index.html").read_text(encoding="utf-8")

    csp = page_policy(page)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse(page, headers={"Content-Security-Policy": csp})

    site = LocalSite(core.net, ort)

    @app.api_route("/local", methods=["GET", "HEAD"], include_in_schema=False)
    async def local_index():
        return RedirectResponse("/local/")  # the page's files are named relative to it

    @app.api_route("/local/{name:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def local_file(name: str):
        path = await asyncio.to_thread(site.file, name or "index.html")
        headers = {"Content-Security-Policy": site.policy(), "Cache-Control": "no-cache"}
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"), headers=headers)

    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes)
    app.add_middleware(SecurityHeaders, hosts=hosts)
    return app


def _safe_name(name: str) -> str:
    """A client's file name, for messages and results only: never a path on this machine."""
    import os

    base = os.path.basename(name.replace("\\", "/")) or "upload"
    return "".join(c if c.isprintable() else "?" for c in base)[:200]
