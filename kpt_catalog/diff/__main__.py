"""`python -m kpt_catalog.diff`: the same as `kpt-catalog diff`."""

import sys

from kpt_catalog.diff.command import main

sys.exit(main())
