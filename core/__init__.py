"""The kernel every layer may use: pure helpers with no database and no outside service."""
