"""``python -m loadmanager``: the same as the ``loadmanager`` console script."""

from .cli import main

if __name__ == "__main__":  # importing this module (pkgutil does) must not run the CLI
    main()
