"""docker-compose.yml, the Dockerfile and .dockerignore, parsed: every service's command, health
check and environment point at things that exist in the project, nothing is installed at start,
the UI is published on loopback only (no Docker engine runs here; tests/test_e2e_server.py runs the
same topology without Docker, with basic auth and the health check against a real server)."""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
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


def stage(name: str | None) -> str:
    """One Dockerfile stage's text (None: the last, default target)."""
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^(?=FROM )", text, flags=re.M)[1:]
    if name is None:
        return stages[-1]
    (found,) = [s for s in stages if re.match(rf"FROM \S+ AS {name}\b", s)]
    return found


def instructions(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


DEFAULT = {name for name, s in SERVICES.items() if not s.get("profiles")}
DASK = {name for name, s in SERVICES.items() if "dask" in (s.get("profiles") or [])}


def test_topology_and_start_order():
    assert DEFAULT == {"postgres", "server", "numerflow"}  # `docker compose up`
    assert DASK == {"dask-scheduler", "dask-worker"}  # `docker compose --profile dask up`
    assert SERVICES["server"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert SERVICES["numerflow"]["depends_on"] == {"server": {"condition": "service_healthy"}}
    assert SERVICES["dask-worker"]["depends_on"] == {"dask-scheduler": {"condition": "service_healthy"},
                                                     "server": {"condition": "service_healthy"}}
    for name, service in SERVICES.items():
        assert "healthcheck" in service, f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", f"{name} does not come back after a reboot"


def test_only_the_ui_is_published_and_only_on_loopback():
    """Anyone reaching the UI/API can trigger runs and read logs: nothing listens beyond the host."""
    published = {name: s["ports"] for name, s in SERVICES.items() if s.get("ports")}
    assert published == {"server": ["127.0.0.1:4200:4200"]}
    for ports in published.values():
        for port in ports:
            host_ip = str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{port} is published on every interface"


def test_nothing_is_installed_at_start():
    for name, service in SERVICES.items():
        env = env_of(name)
        assert "EXTRA_PIP_PACKAGES" not in env, f"{name} pip-installs at every start"
        command = " ".join(str(c) for c in service.get("command") or [])
        assert not re.search(r"\b(pip|uv|conda|apt-get)\b", command), f"{name} installs at start: {command}"
        image = service.get("image", "")
        # Either a pinned third-party image (postgres), or an image built here from the Dockerfile.
        if "build" in service:
            assert service["build"]["context"] == "." and service["build"]["dockerfile"] == "Dockerfile"
            assert image.endswith(":local")  # a local tag, never pulled
        else:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), image


def test_postgres_health_check_is_pg_isready_on_its_database():
    pg = SERVICES["postgres"]
    test = " ".join(pg["healthcheck"]["test"])
    env = env_of("postgres")
    assert "pg_isready" in test and f"-U {env['POSTGRES_USER']}" in test and f"-d {env['POSTGRES_DB']}" in test


def test_server_runs_prefect_server_on_postgres():
    server = SERVICES["server"]
    # Built from the Dockerfile's server stage: the pinned Prefect, baked in.
    assert server["build"]["target"] == "server"
    server_stage = instructions(stage("server"))
    assert "-c /tmp/constraints.txt prefect" in server_stage and "pip check" in server_stage
    assert "import asyncpg" in server_stage and "prefect.__version__ == '3.8.8'" in server_stage
    assert "sqlalchemy.__version__ < '2.1'" in server_stage
    assert 'CMD ["prefect", "server", "start"' in server_stage and "USER prefect" in server_stage
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
    health = " ".join(server["healthcheck"]["test"])
    assert f"localhost:{port}/api/health" in health
    assert server["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert interpolate(env_of("server")["PREFECT_UI_API_URL"]) == f"http://127.0.0.1:{port}/api"


def test_prefect_server_health_endpoint_is_real_and_open_under_basic_auth():
    """Prefect 3.8.8 (prefect/server/api/server.py, create_api_app): with
    PREFECT_SERVER_API_AUTH_STRING set, every API request needs `Authorization: Basic ...`, except
    GET /health and /ready, which compose's health check uses. tests/test_e2e_server.py runs it."""
    import inspect

    from prefect.server.api import server as prefect_server

    source = inspect.getsource(prefect_server.create_api_app)
    assert "PREFECT_SERVER_API_AUTH_STRING" in source and 'health_check_paths = {health_check_path, "/ready"}' in source
    assert 'scheme == "Basic"' in source
    from prefect.settings import Settings

    assert "auth_string" in Settings().server.api.model_fields and "auth_string" in Settings().api.model_fields


def test_numerflow_service_builds_the_project_and_serves():
    service = SERVICES["numerflow"]
    dockerfile = ROOT / service["build"]["dockerfile"]
    assert service["build"]["context"] == "." and dockerfile.exists() and "target" not in service["build"]
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


def test_numerflow_health_check_is_the_serve_polling_check():
    """Not "the deployment exists" (true while serve hangs): serve.py --check, which wants the round
    deployment READY (tests/test_e2e_server.py: READY while serve polls, NOT_READY after it stops)."""
    from numerflow.deployments import serve
    from numerflow.flows.deployments import ROUND, SPECS, build_deployments
    from numerflow.flows.scheduled import scheduled_round_flow
    from numerflow.tasks.core.config import load_settings

    health = SERVICES["numerflow"]["healthcheck"]
    assert health["test"] == ["CMD", "python", "-m", "numerflow.deployments.serve", "--check"]
    assert importlib.util.find_spec(health["test"][3]) is not None
    # What --check asks for is the deployment serve registers.
    assert serve.ROUND_FLOW_NAME == scheduled_round_flow.name and serve.ROUND_KEY == ROUND
    (round_dep,) = [d for d in build_deployments(load_settings()) if d.name.endswith(f"-{ROUND}")]
    assert round_dep.name == f"{load_settings().schedule.deployment_prefix}-{serve.ROUND_KEY}"
    assert [s.key for s in SPECS if s.key == ROUND] == [serve.ROUND_KEY]
    # Red within a few minutes of a hang: Prefect's 60 s poll timeout, then `retries` failed checks.
    def seconds(value) -> int:
        return int(str(value).removesuffix("s"))

    assert seconds(health["interval"]) * health["retries"] <= 180 and seconds(health["timeout"]) >= 10


class FakePrefectAPI(http.server.BaseHTTPRequestHandler):
    """GET /api/deployments/name/<flow>/<name> → a deployment with the status the test sets."""

    status = "READY"
    seen: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        FakePrefectAPI.seen.append((self.path, self.headers.get("Authorization")))
        if self.path != "/api/deployments/name/scheduled-round/numerflow-round":
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps({"name": "numerflow-round", "status": FakePrefectAPI.status,
                           "last_polled": "2026-12-01T12:00:00Z"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_api():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakePrefectAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakePrefectAPI.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "numerflow.deployments.serve", "--check"], capture_output=True,
                          text=True, timeout=60, env=env)


def test_health_check_command_is_green_on_ready_and_red_on_not_ready(fake_api):
    """The real command, as compose runs it (a subprocess: exit status and message)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_API_URL"] = fake_api
    FakePrefectAPI.status = "READY"
    ok = run_check(env)
    assert ok.returncode == 0 and "numerflow-round is READY" in ok.stdout, ok.stderr
    assert FakePrefectAPI.seen[-1] == ("/api/deployments/name/scheduled-round/numerflow-round", None)
    FakePrefectAPI.status = "NOT_READY"
    red = run_check(env)
    assert red.returncode == 1 and "NOT_READY" in red.stderr


def test_health_check_sends_basic_auth_and_fails_on_a_missing_deployment_or_api(fake_api, monkeypatch):
    import base64

    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from numerflow.deployments.serve import check

    FakePrefectAPI.status = "READY"
    monkeypatch.setenv("PREFECT_API_URL", fake_api)
    with temporary_settings({PREFECT_API_URL: fake_api, PREFECT_API_AUTH_STRING: "admin:pw-for-this-test"}):
        assert check()[0] is True
        assert FakePrefectAPI.seen[-1][1] == "Basic " + base64.b64encode(b"admin:pw-for-this-test").decode()
        monkeypatch.setenv("NUMERFLOW_SCHEDULE__DEPLOYMENT_PREFIX", "other")  # asks for other-round: 404
        healthy, why = check()
        assert not healthy and "other-round: HTTP 404" in why
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    monkeypatch.setenv("PREFECT_API_URL", closed)
    with temporary_settings({PREFECT_API_URL: closed}):
        healthy, why = check(timeout=2)
        assert not healthy and "unreachable" in why


def test_dockerfile_installs_the_pins_and_bakes_no_secrets():
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11" in text
    assert "pip wheel" in text and "pip check" in text
    assert "sqlalchemy.__version__ < '2.1'" in text
    # One copy of the code: the sources live only in the build stage, the final stage gets the wheel.
    final_stage = instructions(stage(None))
    assert "COPY tasks" not in final_stage and "COPY flows" not in final_stage and "--from=build /wheels" in final_stage
    assert "pip install -c /tmp/constraints.txt /wheels/*.whl" in final_stage
    for copied in re.findall(r"^COPY (?!--from)(\S+(?: \S+)*) \S+$", text, flags=re.M):
        for item in copied.split():
            assert (ROOT / item).exists(), f"Dockerfile copies {item}, which is not in the project"
    assert 'CMD ["python", "-m", "numerflow.deployments.serve"]' in final_stage and "USER numerflow" in final_stage
    for secret in ("NUMERAI_PUBLIC_ID", "NUMERAI_SECRET_KEY", "WEBHOOK", ".env", "AUTH_STRING"):
        assert secret not in instructions(text), f"{secret} must come at run time, not from the image"
    assert "COPY . " not in instructions(text)  # copying the whole tree would bake a local .env in


def test_every_pip_install_in_the_dockerfile_uses_the_lock():
    text = instructions((ROOT / "Dockerfile").read_text())
    commands = [c.strip() for run in re.findall(r"^RUN (.+?)(?<!\\)$", text, flags=re.M | re.S)
                for c in re.split(r"&&|\\\n", run) if re.search(r"\bpip (install|wheel)\b", c)]
    assert len(commands) >= 5  # build: pip, wheel; server: pip, prefect; final: pip, wheel
    for command in commands:
        assert re.search(r"-c (/tmp/)?constraints\.txt", command), f"unpinned: {command}"
    (wheel,) = [c for c in commands if "pip wheel" in c]
    assert "--build-constraint constraints.txt" in wheel  # setuptools/wheel pinned too
    # The lock reaches every stage that installs.
    for name in ("build", "server", None):
        assert "constraints.txt" in instructions(stage(name))


def dockerignored(path: str, rules: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins (`!` re-includes); a pattern
    matching a parent directory matches everything below it; `*` stays within one path segment."""
    excluded = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*", "\0").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = regex.replace("\0/", "(?:.*/)?").replace("\0", ".*")
        parts = path.split("/")
        if any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def dockerignore_rules() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_dockerignore_keeps_venv_data_git_and_secrets_out_of_the_build_context():
    rules = dockerignore_rules()
    for path in (".venv/bin/python", ".venv", "data/prices/demo/part-0.parquet", "data", ".git/HEAD", ".git",
                 ".env", "numerflow.toml", "benchmarks/results/run.json", "tasks/__pycache__/x.cpython-311.pyc",
                 ".pytest_cache/v/cache", "build/lib/x.py"):
        assert dockerignored(path, rules), f"{path} would be sent to the Docker build"
    # ...while everything the Dockerfile copies is still there.
    text = instructions((ROOT / "Dockerfile").read_text())
    copied = [item for group in re.findall(r"^COPY (?!--from)(\S+(?: \S+)*) \S+$", text, flags=re.M)
              for item in group.split()]
    assert set(copied) >= {"pyproject.toml", "constraints.txt", "tasks", "flows", "deployments"}
    for item in copied:
        paths = [p.relative_to(ROOT).as_posix() for p in (ROOT / item).rglob("*.py")] if (ROOT / item).is_dir() \
            else [item]
        assert paths and not [p for p in paths if dockerignored(p, rules)], f"{item} is ignored but copied"


def test_the_dockerignore_matcher_is_docker_like():
    """What makes the check above able to fail."""
    assert not dockerignored(".venv/bin/python", ["data"])
    assert dockerignored("a/b/c", ["a"]) and not dockerignored("a/b/c", ["a", "!a/b"])
    assert dockerignored("x/__pycache__/m.pyc", ["**/__pycache__"])
    assert dockerignored("__pycache__/m", ["**/__pycache__"])
    assert not dockerignored("dir/file.py", ["*.py"]) and dockerignored("file.py", ["*.py"])


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
    # ...an address the dask profile really serves.
    scheduler = SERVICES["dask-scheduler"]["command"]
    assert urlparse(settings.orchestration.dask_address).hostname == "dask-scheduler"
    assert str(urlparse(settings.orchestration.dask_address).port) == scheduler[scheduler.index("--port") + 1]
    assert settings.price_source == "yahoo" and settings.schedule.round_mode == "live"


@pytest.mark.parametrize("bad", ["NUMERFLOW_SCHEDULE__ROUND_CRON", "NUMERFLOW_ORCHESTRATION__TASKRUNNER",
                                 "NUMERFLOW_DATA_DIR__X"])
def test_a_misspelled_env_option_is_caught(bad):
    """What makes the check above able to fail."""
    assert not setting_exists(bad)
    assert setting_exists("NUMERFLOW_NUMERAI__MODEL_NAME") and setting_exists("NUMERFLOW_DATA_DIR")


def compose_command(service: str, hosts: dict[str, str], ports: dict[str, int]) -> list[str]:
    """A service's command with compose's host names and ports mapped onto this machine."""
    out = []
    for part in SERVICES[service]["command"]:
        part = str(part)
        for host, ip in hosts.items():
            part = part.replace(f"tcp://{host}:", f"tcp://{ip}:")
        for old, new in ports.items():
            part = re.sub(rf"(?<![\d]){old}(?![\d])", str(new), part)
        out.append(part)
    return out


def health_url(service: str, ports: dict[str, int]) -> str:
    test = " ".join(SERVICES[service]["healthcheck"]["test"])
    (url,) = re.findall(r"http://localhost:(\d+)(/\S*?)'", test)
    return f"http://127.0.0.1:{ports[url[0]]}{url[1]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_dask_profile_runs_numerflow_ingest_on_its_scheduler_and_worker(prefect_harness, tmp_path):
    """The dask profile's own commands and health checks, run here (no Docker): the scheduler and a
    worker come up healthy, and the ingest flow with dask_address runs its batches on that worker."""
    import httpx
    from distributed import Client

    from numerflow.flows.prices import prices_flow
    from numerflow.flows.scheduled import task_runner_for
    from numerflow.tasks.core.config import load_settings

    ports = {"8786": free_port(), "8787": free_port(), "8789": free_port()}
    hosts = {"dask-scheduler": "127.0.0.1"}
    env = {**os.environ, "NUMERFLOW_DATA_DIR": str(tmp_path / "data")}
    scheduler_cmd = compose_command("dask-scheduler", hosts, ports)
    worker_cmd = compose_command("dask-worker", hosts, ports)
    assert scheduler_cmd[:2] == ["dask", "scheduler"] and worker_cmd[:3] == ["dask", "worker", f"tcp://127.0.0.1:{ports['8786']}"]
    bindir = Path(sys.executable).parent
    procs = []
    try:
        for cmd, log in ((scheduler_cmd, "scheduler.log"), (worker_cmd, "worker.log")):
            with (tmp_path / log).open("w") as out:
                procs.append(subprocess.Popen([str(bindir / cmd[0]), *cmd[1:]], cwd=tmp_path, env=env, stdout=out,
                                              stderr=subprocess.STDOUT, start_new_session=True))
        for service in ("dask-scheduler", "dask-worker"):
            url = health_url(service, ports)
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
                assert time.monotonic() < deadline, f"{service} not healthy at {url}:\n{logs}"
                time.sleep(0.5)
        address = f"tcp://127.0.0.1:{ports['8786']}"
        overrides = {"data_dir": str(tmp_path / "data"), "price_source": "demo", "demo": {"tickers": 60, "years": 1.0, "seed": 3},
                     "yahoo": {"batch_size": 20}, "orchestration": {"task_runner": "dask", "dask_address": address}}
        runner = task_runner_for(load_settings(**overrides))
        summary = prices_flow.with_options(task_runner=runner)(overrides=overrides)
        assert summary["tickers"] == 60 and summary["rows"] > 0
        with Client(address, timeout=20) as client:
            transitions = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
        assert transitions > 0  # the batches went through this scheduler, not a local cluster
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)


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


def test_documented_basic_auth_override_names_real_services_and_prefect_settings(monkeypatch):
    """docs/operations.md's docker-compose.override.yml turns Prefect's basic auth on: it must name
    services that exist and the settings Prefect 3.8.8 reads (server: PREFECT_SERVER_API_AUTH_STRING,
    clients: PREFECT_API_AUTH_STRING; tests/test_e2e_server.py runs a real server with both)."""
    docs = (ROOT / "docs" / "operations.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", docs, flags=re.S) if "AUTH_STRING" in b]
    override = yaml.safe_load(textwrap.dedent(block))
    assert set(override["services"]) <= set(SERVICES)
    server_env = override["services"]["server"]["environment"]
    assert list(server_env) == ["PREFECT_SERVER_API_AUTH_STRING"]
    assert re.fullmatch(r"\$\{PREFECT_API_AUTH_STRING:\?[^}]+\}", server_env["PREFECT_SERVER_API_AUTH_STRING"])
    # The numerflow service gets PREFECT_API_AUTH_STRING from .env (env_file); the worker from the override.
    assert SERVICES["numerflow"]["env_file"] == [".env"] and "PREFECT_API_AUTH_STRING" in env_example()
    assert "PREFECT_API_AUTH_STRING" in override["services"]["dask-worker"]["environment"]
    from prefect.settings import Settings

    monkeypatch.setenv("PREFECT_SERVER_API_AUTH_STRING", "u:server-side")
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "u:client-side")
    settings = Settings()
    assert settings.server.api.auth_string.get_secret_value() == "u:server-side"
    assert settings.api.auth_string.get_secret_value() == "u:client-side"
