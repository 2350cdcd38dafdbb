"""``python -m scallion ...``: the same as the ``scallion`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m scallion"))
