"""Shared by every stage: settings, errors, the atomic store, schemas, ranks."""
