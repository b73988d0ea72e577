"""A name or a file -> a ready model: the registry of released models, downloads, building networks,
:func:`dymn.load`."""
