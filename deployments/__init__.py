"""How numerflow is deployed: serve.py (one process, no work pool) or prefect.yaml (a work pool + worker)."""
