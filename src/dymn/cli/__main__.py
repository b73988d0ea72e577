"""``python -m dymn.cli``: the ``dymn`` command."""

from .main import entry

entry()
