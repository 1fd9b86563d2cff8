"""Work on a schedule inside `votz run`: campaign events (announcements, reminders, results,
unfinished-ballot nudges) and the catalog refresh, ticked by APScheduler (`scheduler.py`);
what an event is and who hears it: `events.py`."""
