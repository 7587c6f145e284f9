"""Numerai Crypto: its v1/v2 data layouts read by inspection, the crypto calendar (every day a trading day)."""
