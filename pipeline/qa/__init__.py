"""The quality gate's local half: checks on delivered images that need no API call."""
