"""Running a plan: what is fresh, what to fetch, and the async scheduler."""
