"""The round engine's plain-Python parts: the typed results that cross stages, the models of a
round, the tournaments (what differs between Signals, Crypto and Classic), the round guard, the
run report, the summaries and the failure notifications. flows/ chains them as Prefect tasks."""
