"""Safety supervisor (sole publisher of cmd_vel) and health node."""
