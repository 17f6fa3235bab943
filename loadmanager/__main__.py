"""``python -m loadmanager``: the same as the ``loadmanager`` console script."""

from .cli import main

main()
