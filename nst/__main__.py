"""``python -m nst``: see :mod:`nst.cli`."""

from .cli import run

if __name__ == "__main__":
    run()
