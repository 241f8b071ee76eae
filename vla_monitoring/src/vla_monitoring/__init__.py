"""The reporting library every node uses (config idiom, log bridge, diagnostics, bad-input counting) and the
monitoring nodes: health, resources, metrics and logs, alerts, the dashboard."""
