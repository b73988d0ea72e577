"""``dymn serve``: a tagging service with a JSON API and a web page (install the ``[serve]`` extra)."""

from .core import Limits, ServiceCore, ServiceError

__all__ = ["Limits", "ServiceCore", "ServiceError"]
