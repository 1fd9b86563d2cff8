"""`python -m bot` is the `votz` command."""

from bot.cli import main

raise SystemExit(main())
