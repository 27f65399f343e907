"""``python -m slipway``: the same as the ``slipway`` command."""

from .cli.main import main

main()
