"""Numerai: the API client, universe, training data, submission files, the ledger."""
