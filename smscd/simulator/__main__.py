from __future__ import annotations

import sys

from smscd.simulator._cli import main

raise SystemExit(main(sys.argv[1:]))
