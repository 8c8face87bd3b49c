"""``python -m tests.fakevast --port 9090 --data-dir DIR`` serves a fake VAST endpoint."""

from .server import main

raise SystemExit(main())
