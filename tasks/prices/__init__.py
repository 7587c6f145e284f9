"""Prices: sources, ticker resolution, rate limits, batched ingest, data quality."""
