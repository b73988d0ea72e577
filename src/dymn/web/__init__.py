"""Models in the browser: :func:`export_web` writes a static site that tags files and the microphone with
onnxruntime-web, nothing uploaded."""

from .site import ORT_CDN, ORT_VERSION, export_web, find_ort, site_config

__all__ = ["ORT_CDN", "ORT_VERSION", "export_web", "find_ort", "site_config"]
