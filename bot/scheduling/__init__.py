"""Periodic work inside `votz run`: the catalog refresh now; phase events and reminders next."""
