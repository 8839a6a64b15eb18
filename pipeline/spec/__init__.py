"""The spec language: YAML with positions, the validated models, and project loading."""
