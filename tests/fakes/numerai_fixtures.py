"""Pytest fixtures around the fake Numerai server; import them into a test module:
``from fakes.numerai_fixtures import fake_numerai, numerai_settings, keys, make_client``."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from pydantic import SecretStr

from fakes.numerai_server import FakeNumeraiServer, open_round
from numerflow.tasks.core.config import load_settings
from numerflow.tasks.numerai.client import NumeraiClient, NumeraiKeys


def universe_parquet(tickers: list[str], *, figi: bool = True, extra: dict | None = None) -> bytes:
    frame = pd.DataFrame({"numerai_ticker": tickers})
    if figi:
        frame["composite_figi"] = [f"BBG{i:09d}" for i in range(len(tickers))]
    for name, values in (extra or {}).items():
        frame[name] = values
    buffer = io.BytesIO()
    # Uncompressed, so tests can rewrite ticker bytes in place (same size, new content).
    frame.to_parquet(buffer, index=False, compression=None)
    return buffer.getvalue()


def us_tickers(n: int, start: int = 0) -> list[str]:
    return [f"T{i:04d} US" for i in range(start, start + n)]


@pytest.fixture
def fake_numerai():
    with FakeNumeraiServer() as fake:
        fake.set_round("signals", open_round(1001))
        fake.set_round("crypto", open_round(501))
        fake.add_dataset("signals", "signals/v1.0/live.parquet", universe_parquet(["OLD US"]))
        fake.add_dataset("signals", "signals/v2.1/live.parquet", universe_parquet(us_tickers(150)))
        fake.add_dataset("signals", "signals/v2.1/train.parquet", b"")
        fake.add_dataset("crypto", "crypto/v2.0/live_universe.parquet",
                         _crypto_universe([f"C{i:03d}" for i in range(120)]))
        yield fake


def _crypto_universe(symbols: list[str]) -> bytes:
    buffer = io.BytesIO()
    pd.DataFrame({"symbol": symbols}).to_parquet(buffer, index=False)
    return buffer.getvalue()


@pytest.fixture
def keys(fake_numerai):
    return NumeraiKeys(SecretStr(fake_numerai.state.public_id), SecretStr(fake_numerai.state.secret_key), "test")


@pytest.fixture
def numerai_settings(tmp_path, fake_numerai):
    return load_settings(data_dir=tmp_path / "data",
                         numerai={"api_url": fake_numerai.url, "model_name": "my_signals", "timeout_seconds": 5})


@pytest.fixture
def sleeps():
    """Seconds the client would have slept between retries (it never really sleeps in tests)."""
    return []


@pytest.fixture
def make_client(fake_numerai, keys, sleeps):
    def make(tournament: str = "signals", with_keys: bool = True, **kwargs) -> NumeraiClient:
        kwargs.setdefault("timeout", 5)
        return NumeraiClient(tournament, keys if with_keys else None, api_url=fake_numerai.url,
                             sleep=sleeps.append, **kwargs)

    return make
