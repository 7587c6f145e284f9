# numerflow's images. Every version comes from the lock, constraints.txt (exact pins of a known-good
# environment; pyproject.toml keeps the ranges): prefect==3.8.8, fastapi<0.151, sqlalchemy<2.1 (2.1
# stops the scheduler creating runs), ... The build context is an allowlist (.dockerignore).
# No secrets in any image: keys come at run time from the env file (docker-compose.yml, .env).
#
#   docker build .                  numerflow: the serve process (numerflow.deployments.serve) and the CLI
#   docker build --target server .  the Prefect server docker-compose.yml runs (nothing installed at start)

# Stage 1 builds the wheel (build tools pinned by the lock too).
FROM python:3.11-slim AS build
WORKDIR /src
COPY constraints.txt pyproject.toml README.md LICENSE ./
COPY tasks ./tasks
COPY flows ./flows
COPY deployments ./deployments
RUN pip install --no-cache-dir -c constraints.txt --upgrade pip \
    && pip wheel --no-cache-dir --no-deps -c constraints.txt --build-constraint constraints.txt --wheel-dir /wheels .

# The Prefect server: Prefect and its server dependencies (asyncpg for PostgreSQL, SQLAlchemy < 2.1,
# fastapi < 0.151), the same pinned versions numerflow runs with. Not the default target.
FROM python:3.11-slim AS server
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1
COPY constraints.txt /tmp/constraints.txt
RUN pip install -c /tmp/constraints.txt --upgrade pip && pip install -c /tmp/constraints.txt prefect \
    && rm /tmp/constraints.txt && pip check \
    && python -c "import asyncpg, sqlalchemy, prefect; assert sqlalchemy.__version__ < '2.1', sqlalchemy.__version__; assert prefect.__version__ == '3.8.8'"
RUN useradd --create-home --uid 1000 prefect
USER prefect
WORKDIR /home/prefect
EXPOSE 4200
CMD ["prefect", "server", "start", "--host", "0.0.0.0", "--port", "4200"]

# numerflow (the default target): installs only the wheel from stage 1, so the image holds one copy
# of the code (in site-packages) and no source tree.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    NUMERFLOW_DATA_DIR=/data \
    PREFECT_LOGGING_EXTRA_LOGGERS=yfinance,lightgbm,numerapi,numerflow

# LightGBM needs OpenMP at run time.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*

COPY --from=build /wheels /wheels
COPY --from=build /src/constraints.txt /tmp/constraints.txt
RUN pip install -c /tmp/constraints.txt --upgrade pip && pip install -c /tmp/constraints.txt /wheels/*.whl \
    && rm -rf /wheels /tmp/constraints.txt && pip check \
    && python -c "import sqlalchemy, prefect; assert sqlalchemy.__version__ < '2.1', sqlalchemy.__version__; assert prefect.__version__ == '3.8.8'"

RUN useradd --create-home --uid 1000 numerflow && mkdir -p /data && chown numerflow /data
USER numerflow
WORKDIR /home/numerflow
VOLUME ["/data"]

CMD ["python", "-m", "numerflow.deployments.serve"]
