"""The region's facts: its time zone, its languages, its départements."""

from __future__ import annotations

from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
LOCALES = ("fr", "en", "oc")
OCCITANIE = ("09", "11", "12", "30", "31", "32", "34", "46", "48", "65", "66", "81", "82")
