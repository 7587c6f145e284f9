"""How numerflow is deployed: serve.py (one process, no work pool) or prefect.yaml (a work pool + worker)."""

#: Loggers whose records reach the Prefect UI (PREFECT_LOGGING_EXTRA_LOGGERS): the libraries that
#: talk to the outside world and our own. prefect.yaml and the Dockerfile repeat it (a test checks).
#: Kept here, free of Prefect imports, because it must be set before Prefect configures logging.
EXTRA_LOGGERS = "yfinance,lightgbm,numerapi,numerflow"
