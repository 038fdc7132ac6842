"""``python -m crossent``: the same as the ``crossent`` command.

The package is imported before this module runs (its ``__init__`` handles Ctrl-C in
that time: :mod:`crossent._main_start`); ``crossent.cli`` is imported here, inside the
same handling, as the installed command's entry point imports it."""

from crossent._main_start import interrupted

try:
    from crossent.cli import console_main
except KeyboardInterrupt:
    interrupted()

__all__: list[str] = []

console_main()
