from __future__ import annotations

from smscd.cli import main

raise SystemExit(main())
