"""Robot agent, fleet manager, scheduler, OTA updater and maintenance (arrive with their issues)."""
