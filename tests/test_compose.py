"""docker-compose.yml, parsed: every service's command, health check and environment point at
things that exist in the project (no Docker engine runs here; tests/test_e2e_server.py runs the
same topology without Docker)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def env_of(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    return {k: str(v) for k, v in env.items()}


def interpolate(text: str) -> str:
    """Compose's ${VAR:-default} with the defaults (what runs when .env does not set them)."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: m.group(2), text)


def test_topology_and_start_order():
    assert set(SERVICES) == {"postgres", "server", "numerflow"}
    assert SERVICES["server"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert SERVICES["numerflow"]["depends_on"] == {"server": {"condition": "service_healthy"}}
    for name, service in SERVICES.items():
        assert "healthcheck" in service, f"{name} has no health check"


def test_postgres_health_check_is_pg_isready_on_its_database():
    pg = SERVICES["postgres"]
    test = " ".join(pg["healthcheck"]["test"])
    env = env_of("postgres")
    assert "pg_isready" in test and f"-U {env['POSTGRES_USER']}" in test and f"-d {env['POSTGRES_DB']}" in test


def test_server_runs_prefect_server_on_postgres():
    server = SERVICES["server"]
    assert server["image"] == f"prefecthq/prefect:{version('prefect')}-python3.11"  # the pinned version
    command = server["command"]
    assert command[:3] == ["prefect", "server", "start"]
    port = command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    # The same command exists in the pinned Prefect.
    help_text = subprocess.run([sys.executable, "-m", "prefect", "server", "start", "--help"], capture_output=True,
                               text=True, timeout=120)
    assert help_text.returncode == 0 and "--host" in help_text.stdout and "--port" in help_text.stdout
    url = urlparse(interpolate(env_of("server")["PREFECT_API_DATABASE_CONNECTION_URL"]))
    pg = env_of("postgres")
    assert url.scheme == "postgresql+asyncpg" and url.hostname == "postgres" and url.port == 5432
    assert url.username == pg["POSTGRES_USER"] and url.password == interpolate(pg["POSTGRES_PASSWORD"])
    assert url.path == f"/{pg['POSTGRES_DB']}"
    assert "sqlalchemy<2.1" in env_of("server")["EXTRA_PIP_PACKAGES"]
    health = " ".join(server["healthcheck"]["test"])
    assert f"localhost:{port}/api/health" in health
    assert f"{port}:{port}" in server["ports"]


def test_numerflow_service_builds_the_project_and_serves():
    service = SERVICES["numerflow"]
    dockerfile = ROOT / service["build"]["dockerfile"]
    assert service["build"]["context"] == "." and dockerfile.exists()
    command = service["command"]
    # The installed module (the image holds no source tree), which exists in this project.
    assert command == ["python", "-m", "numerflow.deployments.serve"]
    assert importlib.util.find_spec(command[2]) is not None
    api = urlparse(env_of("numerflow")["PREFECT_API_URL"])
    server_port = SERVICES["server"]["command"][SERVICES["server"]["command"].index("--port") + 1]
    assert api.hostname == "server" and str(api.port) == server_port and api.path == "/api"
    # Data on a named volume, at the data dir the settings use.
    data_dir = env_of("numerflow")["NUMERFLOW_DATA_DIR"]
    assert any(v.split(":")[1] == data_dir and v.split(":")[0] in COMPOSE["volumes"] for v in service["volumes"])
    assert service["env_file"] == [".env"] and (ROOT / ".env.example").exists()


def test_numerflow_health_check_names_the_real_round_deployment():
    from numerflow.flows.deployments import build_deployments
    from numerflow.tasks.core.config import load_settings

    health = " ".join(SERVICES["numerflow"]["healthcheck"]["test"])
    (round_dep,) = [d for d in build_deployments(load_settings()) if d.name.endswith("-round")]
    flow_name = "scheduled-round"
    from numerflow.flows.scheduled import scheduled_round_flow

    assert scheduled_round_flow.name == flow_name
    assert f"/deployments/name/{flow_name}/" in health and "'-round'" in health
    assert round_dep.name == "numerflow-round" and "'numerflow'" in health  # the default prefix


def test_dockerfile_installs_the_pins_and_bakes_no_secrets():
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11" in text
    assert "pip wheel" in text and "pip install /wheels/" in text and "pip check" in text
    assert "sqlalchemy.__version__ < '2.1'" in text
    # One copy of the code: the sources live only in the build stage, the final stage gets the wheel.
    final_stage = text.rsplit("\nFROM ", 1)[1]
    assert "COPY tasks" not in final_stage and "COPY flows" not in final_stage and "--from=build /wheels" in final_stage
    for copied in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M):
        assert (ROOT / copied).exists(), f"Dockerfile copies {copied}, which is not in the project"
    assert 'CMD ["python", "-m", "numerflow.deployments.serve"]' in text
    instructions = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for secret in ("NUMERAI_PUBLIC_ID", "NUMERAI_SECRET_KEY", "WEBHOOK", ".env"):
        assert secret not in instructions, f"{secret} must come at run time, not from the image"
    assert "COPY . " not in instructions  # copying the whole tree would bake a local .env in


def test_pyproject_pins_what_the_image_needs():
    pyproject = (ROOT / "pyproject.toml").read_text()
    for pin in ('"prefect==3.8.8"', '"sqlalchemy<2.1"', '"fastapi<0.151"', '"prefect-dask==0.3.7"'):
        assert pin in pyproject


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip().lstrip("# ").strip()
        if re.match(r"^[A-Z_][A-Z0-9_]*=", line):
            key, value = line.split("=", 1)
            values[key] = value
    return values


def setting_exists(env_name: str) -> bool:
    """NUMERFLOW_A__B → Settings field a.b (pydantic-settings silently ignores unknown env names)."""
    from pydantic import BaseModel

    from numerflow.tasks.core.config import Settings

    model: type[BaseModel] = Settings
    parts = env_name.removeprefix("NUMERFLOW_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def test_env_example_names_real_settings(monkeypatch):
    """Every NUMERFLOW_* variable in .env.example (commented ones too) is a setting numerflow reads."""
    from numerflow.tasks.core.config import load_settings

    values = env_example()
    assert {"NUMERAI_PUBLIC_ID", "NUMERAI_SECRET_KEY", "NUMERFLOW_ORCHESTRATION__NOTIFY_WEBHOOK_URL"} <= set(values)
    assert values["NUMERAI_SECRET_KEY"] == "" and values["NUMERAI_PUBLIC_ID"] == ""  # no real keys committed
    numerflow = {k: v for k, v in values.items() if k.startswith("NUMERFLOW_")}
    unknown = [k for k in numerflow if not setting_exists(k)]
    assert unknown == []
    for key, value in numerflow.items():
        if value:
            monkeypatch.setenv(key, value)
    settings = load_settings()  # the example values are valid
    assert settings.schedule.round_crons == ["30 18 * * 6", "0 6 * * 0", "0 6 * * 1", "0 11 * * 1"]
    assert settings.orchestration.dask_address == "tcp://dask-scheduler:8786"
    assert settings.price_source == "yahoo" and settings.schedule.round_mode == "live"


@pytest.mark.parametrize("bad", ["NUMERFLOW_SCHEDULE__ROUND_CRON", "NUMERFLOW_ORCHESTRATION__TASKRUNNER",
                                 "NUMERFLOW_DATA_DIR__X"])
def test_a_misspelled_env_option_is_caught(bad):
    """What makes the check above able to fail."""
    assert not setting_exists(bad)
    assert setting_exists("NUMERFLOW_NUMERAI__MODEL_NAME") and setting_exists("NUMERFLOW_DATA_DIR")


# --------------------------------------------------------------------------- .env, read by numerflow too

ENV_FILE_TEXT = """\
# a comment
NUMERFLOW_DEMO__SEED=5
NUMERFLOW_NUMERAI__MODEL_NAME=
NUMERAI_PUBLIC_ID=PUBLIC-FROM-DOTENV
NUMERAI_SECRET_KEY=SECRET-FROM-DOTENV
POSTGRES_PASSWORD=only-compose-reads-this
PREFECT_API_AUTH_STRING=admin:only-prefect-reads-this
NUMERFLOW_CONFIG=/nonexistent/environment-only.toml
"""


def test_settings_read_dotenv_below_the_environment_and_above_toml(tmp_path, monkeypatch):
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.numerai.client import resolve_keys

    env_file, toml = tmp_path / ".env", tmp_path / "numerflow.toml"
    env_file.write_text(ENV_FILE_TEXT)
    toml.write_text("[demo]\nseed = 3\ntickers = 250\n")
    monkeypatch.setenv("NUMERFLOW_ENV_FILE", str(env_file))
    monkeypatch.setenv("NUMERFLOW_CONFIG", str(toml))
    settings = load_settings()
    assert settings.demo.seed == 5 and settings.demo.tickers == 250  # .env beats TOML; TOML still read
    assert settings.numerai.model_name is None  # an empty value is unset, not ""
    keys = resolve_keys(settings.numerai, env={})
    assert keys is not None and keys.public_id.get_secret_value() == "PUBLIC-FROM-DOTENV"
    assert "SECRET-FROM-DOTENV" not in repr(settings)
    monkeypatch.setenv("NUMERFLOW_DEMO__SEED", "9")
    assert load_settings().demo.seed == 9  # the environment beats .env
    assert load_settings(demo={"seed": 1}).demo.seed == 1  # and keyword arguments beat both
    # Keys in the environment win over the file's pair (neither half is taken from .env).
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", "PUBLIC-FROM-ENV")
    monkeypatch.setenv("NUMERAI_SECRET_KEY", "SECRET-FROM-ENV")
    settings = load_settings()
    assert settings.numerai.public_id is None
    assert resolve_keys(settings.numerai).public_id.get_secret_value() == "PUBLIC-FROM-ENV"


def test_dotenv_is_found_in_the_working_directory_and_a_typo_in_it_is_an_error(tmp_path, monkeypatch):
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.core.errors import BadInputError

    monkeypatch.delenv("NUMERFLOW_ENV_FILE")
    monkeypatch.chdir(tmp_path)
    assert load_settings().demo.seed == 42  # no .env: defaults
    (tmp_path / ".env").write_text("NUMERFLOW_DEMO__SEED=8\n")
    assert load_settings().demo.seed == 8
    (tmp_path / ".env").write_text("NUMERFLOW_PRICE_SORCE=yahoo\n")
    with pytest.raises(BadInputError, match=r"invalid_config: .*price_sorce.*\.env"):
        load_settings()


def test_env_example_as_dotenv_is_valid_for_local_runs(monkeypatch):
    """`cp .env.example .env` works for numerflow's CLI too, not only for compose."""
    from numerflow.tasks.core.config import load_settings

    monkeypatch.setenv("NUMERFLOW_ENV_FILE", str(ROOT / ".env.example"))
    settings = load_settings()
    assert settings.price_source == "yahoo" and settings.schedule.round_mode == "live"
    assert settings.orchestration.task_runner == "threads" and settings.numerai.model_name is None
    assert settings.orchestration.notify_webhook_url is None  # empty in the example: unset


def test_tests_never_read_a_developers_dotenv(tmp_path, monkeypatch):
    from numerflow.tasks.core.config import load_settings

    assert os.environ["NUMERFLOW_ENV_FILE"] == os.devnull  # tests/conftest.py, inherited by subprocesses
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("NUMERFLOW_DEMO__SEED=8\n")
    assert load_settings().demo.seed == 42
