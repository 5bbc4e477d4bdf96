"""``python -m sktransfer.cli``."""

import sys

from . import main

sys.exit(main())
