"""Prefect flows that chain the numerflow stages, and the `numerflow` CLI."""
