import sys

from hwnas.cli import main

sys.exit(main())
