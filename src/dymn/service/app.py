"""The HTTP API and the web page (FastAPI): the same app whichever engine serves it."""

from importlib import resources

# at module level, not in create_app: FastAPI reads the endpoints' annotations (Request, Query) by name
from fastapi import FastAPI, Query, Request

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
    import json

    body = json.dumps({"error": {"status": 413, "message": f"the upload is larger than this service takes "
                                                           f"({max_bytes / 2**20:g} MB)"}}).encode()  # fmt: skip
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(core: ServiceCore):
    """The FastAPI app around ``core``: ``/v1/tag``, ``/v1/timeline``, ``/v1/embed``, ``/v1/models``,
    ``/healthz``, the OpenAPI schema at ``/openapi.json`` and the web page at ``/``."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException

    from .._version import __version__

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
        """The audio of a request: a multipart form's first file, or the raw body."""
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

    responses = {409: {"description": "the endpoint does not fit the model served (tagger or detector)"},
                 413: {"description": "upload or audio too long"}, 415: {"description": "not audio"},
                 422: {"description": "bad parameters or undecodable audio"}}  # fmt: skip
    audio_body = {"requestBody": {"content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}  # fmt: skip

    @app.post(f"/{API_VERSION}/tag", responses=responses, openapi_extra=audio_body,
              summary="Top tags of an audio file (as `dymn tag FILE --format json`)")  # fmt: skip
    async def tag(request: Request, top_k: int = Query(10, description="tags to return; 0 = all classes")):
        data, name = await upload(request)
        return await core.tag(data, name, query_top_k(top_k))

    @app.post(f"/{API_VERSION}/timeline", responses=responses, openapi_extra=audio_body,
              summary="Windows and events over time (as `dymn timeline FILE --format json`)")  # fmt: skip
    async def timeline(request: Request,
                       window: float | None = Query(None, gt=0, description="seconds (default 10; a detector: its "
                                                                           "40 ms frames)"),
                       hop: float | None = Query(None, gt=0, description="seconds (default 1)"),
                       threshold: float = Query(0.5, ge=0, le=1),
                       median: int | None = Query(None, ge=1, description="windows (default 3; a detector's "
                                                                          "frames: 9)"),
                       top_k: int = Query(10)):  # fmt: skip
        data, name = await upload(request)
        return await core.timeline(data, name, window, hop, threshold, median, query_top_k(top_k))

    @app.post(
        f"/{API_VERSION}/detect",
        responses=responses,
        openapi_extra=audio_body,
        summary="Sound events every 40 ms with a frame-level detector (as `dymn detect FILE --format json`)",
    )
    async def detect(request: Request, threshold: float = Query(0.5, ge=0, le=1),
                     median: int = Query(9, ge=1, description="median filter over N frames (odd)")):  # fmt: skip
        data, name = await upload(request)
        return await core.detect(data, name, threshold, median)

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

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        csp = "default-src 'self' 'unsafe-inline' blob:; media-src 'self' blob: mediastream:"
        return HTMLResponse(page, headers={"Content-Security-Policy": csp})

    app.add_middleware(BodyLimit, max_bytes=limits.max_upload_bytes)
    return app


def _safe_name(name: str) -> str:
    """A client's file name, for messages and results only: never a path on this machine."""
    import os

    base = os.path.basename(name.replace("\\", "/")) or "upload"
    return "".join(c if c.isprintable() else "?" for c in base)[:200]
