"""The ``dymn`` command: :mod:`.main` builds the parser from one module per command group (:mod:`.common` holds
what they share); each command parses its arguments and calls the library."""
