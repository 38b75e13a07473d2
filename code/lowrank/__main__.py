import sys

from lowrank.cli import main

if __name__ == "__main__":  # worker processes import this module too (spawn) and must not run it
    sys.exit(main())
