"""``python -m crossent``: the same as the ``crossent`` command."""

from crossent.cli import console_main

__all__: list[str] = []

console_main()
