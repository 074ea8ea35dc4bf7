"""The floor every package stands on: the user-error type, path confinement, a child's lifetime."""
