import sys

from gprof.cli import main

sys.exit(main())
