import sys

from lowrank.cli import main

sys.exit(main())
