"""Resource, metrics, log and alert monitoring (arrives with its issue)."""
