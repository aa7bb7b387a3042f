"""`python -m server ...` entry point."""

import sys

from server.cli import main

sys.exit(main())
