"""`python -m dwc`: the same entry point as the `dwc` console script."""

import sys

from dwc.cli import main

sys.exit(main())
