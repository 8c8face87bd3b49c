"""``python -m cosmoscope`` runs the command line."""

import sys

from cosmoscope.cli import main

sys.exit(main())
