"""`python -m instantly_guard.cli ...`: what `make run` and `make demo` call."""

import sys

from instantly_guard.cli import main

sys.exit(main())
