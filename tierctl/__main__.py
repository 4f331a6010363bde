import sys

from tierctl.cli import main

sys.exit(main())
