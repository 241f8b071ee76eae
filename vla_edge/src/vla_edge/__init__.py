"""Policy inference node, policy runtime and encoders."""
