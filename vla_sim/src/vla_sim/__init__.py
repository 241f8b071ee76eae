"""Light multi-robot simulator with camera and lidar, and the reference VLA policy trained on it."""
