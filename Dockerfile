# numerflow's image: the serve process (numerflow.deployments.serve) and the CLI.
# Pinned versions come from pyproject.toml (prefect==3.8.8, fastapi<0.151, sqlalchemy<2.1, ...):
# the SQLAlchemy pin matters inside the image too (2.1 stops the scheduler creating runs).
# No secrets in the image: keys come at run time from the env file (docker-compose.yml, .env).

# Stage 1 builds the wheel; stage 2 installs only that wheel, so the image holds one copy of
# the code (in site-packages) and no source tree.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY tasks ./tasks
COPY flows ./flows
COPY deployments ./deployments
RUN pip install --no-cache-dir --upgrade pip && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    NUMERFLOW_DATA_DIR=/data \
    PREFECT_LOGGING_EXTRA_LOGGERS=yfinance,lightgbm,numerapi,numerflow

# LightGBM needs OpenMP at run time.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*

COPY --from=build /wheels /wheels
RUN pip install --upgrade pip && pip install /wheels/*.whl && rm -rf /wheels && pip check \
    && python -c "import sqlalchemy, prefect; assert sqlalchemy.__version__ < '2.1', sqlalchemy.__version__; assert prefect.__version__ == '3.8.8'"

RUN useradd --create-home --uid 1000 numerflow && mkdir -p /data && chown numerflow /data
USER numerflow
WORKDIR /home/numerflow
VOLUME ["/data"]

CMD ["python", "-m", "numerflow.deployments.serve"]
