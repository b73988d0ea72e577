"""``/local``: the service's model as the in-browser site of :func:`dymn.web.export_web` (built on the first
request, into a temporary folder that goes when the process ends), so that a running service offers both
server-side and in-browser tagging."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

from ..models.network import is_network
from ..util.errors import DymnError
from ..web.site import CONFIG_FILE, MODEL_FILE, ORT_CDN, ORT_FILES, PAGE_FILES, export_web
from .core import ServiceError

MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
               ".css": "text/css", ".json": "application/json", ".onnx": "application/octet-stream",
               ".wasm": "application/wasm"}  # fmt: skip


class LocalSite:
    """The site of ``net`` with onnxruntime-web from ``ort`` (a local ``dist/``; None: the pinned CDN)."""

    def __init__(self, net, ort: str | None = None):
        self.net = net
        self.ort = ort
        self.folder: Path | None = None
        self.lock = threading.Lock()
        names = [*PAGE_FILES, MODEL_FILE, CONFIG_FILE, *(f"ort/{f}" for f in ORT_FILES if ort)]
        self.names = set(names)

    def policy(self) -> str:
        """The pages' content security policy: their own files; the worker also compiles WebAssembly and, without
        a local copy, loads onnxruntime-web from the CDN."""
        cdn = "" if self.ort else " " + ORT_CDN.split("/npm/")[0]
        return (f"default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{cdn}; worker-src 'self'; "
                f"connect-src 'self'{cdn}; media-src 'self' blob: mediastream:; img-src 'self' data: blob:; "
                "style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
                "frame-ancestors 'none'")  # fmt: skip

    def file(self, name: str) -> Path:
        """The file ``name`` of the site (building the site first); 404 for any other name."""
        if not is_network(self.net):
            raise ServiceError(404, f"{self.net.info.name} does not run in the browser (MN, DyMN and frame-level "
                                    "MN networks do; an ensemble does not)")  # fmt: skip
        if name not in self.names:
            raise ServiceError(404, f"no file {name!r} in the in-browser page")
        return self._build() / name

    def _build(self) -> Path:
        with self.lock:
            if self.folder is None:
                parent = Path(tempfile.mkdtemp(prefix="dymn-local-"))
                atexit.register(shutil.rmtree, parent, True)
                try:
                    self.folder = export_web(self.net, parent / "site", ort=self.ort)
                except DymnError as exc:  # tried again on the next request
                    raise ServiceError(500, f"the in-browser page could not be built: {exc}") from None
            return self.folder
