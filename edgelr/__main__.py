"""``python -m edgelr``: the same CLI as the ``edgelr`` console script."""

from edgelr.cli import main

if __name__ == "__main__":
    main()
