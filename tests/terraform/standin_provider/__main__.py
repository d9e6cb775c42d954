"""`python -m tests.terraform.standin_provider <provider>`: serve one stand-in provider."""

import sys

from tests.terraform.standin_provider.plugin import serve

sys.exit(serve(sys.argv[1]))
