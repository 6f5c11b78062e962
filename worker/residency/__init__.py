"""Model residency: usage in SQLite (usage.py), the decision (decide.py), the loop (loop.py)."""
