"""numerflow pipeline stages: each module's pure functions do one stage's work."""
