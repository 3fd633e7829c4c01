"""``python -m edgelr``: the same CLI as the ``edgelr`` console script."""

from edgelr.cli import run

if __name__ == "__main__":
    run()
