import sys

from dehaze.cli import main

sys.exit(main())
