"""`python -m kpt_catalog`: the same as the `kpt-catalog` script at the project's root."""

import sys

from kpt_catalog.cli import main

sys.exit(main())
