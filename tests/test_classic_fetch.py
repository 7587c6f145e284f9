"""fetch_classic_data through the real numerapi NumerAPI against the fake Numerai server."""

from __future__ import annotations

import pandas as pd
import pytest
from fakes.classic import serve_demo_classic
from fakes.numerai_server import FakeNumeraiServer, open_round

from numerflow.tasks.classic.data import fetch_classic_data, load_feature_metadata, read_classic_frame
from numerflow.tasks.classic.demo import write_demo_classic
from numerflow.tasks.core.errors import BadInputError, TransientError
from numerflow.tasks.core.store import Store
from numerflow.tasks.numerai.client import NumeraiClient, pick_dataset_version


@pytest.fixture
def fake(tmp_path):
    with FakeNumeraiServer() as server:
        server.set_round("classic", open_round(1200))
        server.served = serve_demo_classic(server, tmp_path / "served")
        yield server


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(fake, sleeps):
    return NumeraiClient("classic", None, api_url=fake.url, timeout=5, sleep=sleeps.append)


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "data")


def test_version_is_discovered_and_files_downloaded_in_numerais_schema(fake, client, store):
    files = fetch_classic_data(client, store, None)
    assert files.version == "v5.2"  # not the older ones, not v9.9 that lacks train/validation/live
    assert files.round_number == 1200
    root = store.root / "numerai" / "classic" / "v5.2"
    assert files.train == root / "train.parquet" and files.features_json == root / "features.json"
    assert files.meta_model == root / "meta_model.parquet"
    assert files.validation_example_preds == root / "validation_example_preds.parquet"
    assert files.live == root / "round-1200" / "live.parquet"
    assert files.live_example_preds == root / "round-1200" / "live_example_preds.parquet"
    for path in (files.train, files.validation, files.live, files.features_json, files.meta_model):
        assert path.read_bytes() == fake.served[path.name]
    dataset_calls = fake.calls("dataset")
    assert {c["variables"]["tournament"] for c in dataset_calls} == {8}
    assert {c["variables"]["filename"] for c in dataset_calls} == {f"v5.2/{n}" for n in fake.served}
    assert all(c["variables"]["round"] == 1200 for c in dataset_calls if "live" in c["variables"]["filename"])
    meta = load_feature_metadata(files.features_json)
    frame = read_classic_frame(files.live, meta.feature_set("medium"), [])
    assert set(frame["era"]) == {"X"} and len(frame) == 60
    assert "numerai_meta_model" in pd.read_parquet(files.meta_model).columns


def test_version_files_once_live_once_per_round(fake, client, store, tmp_path):
    fetch_classic_data(client, store, 1200)
    first = list(fake.state.downloads)
    assert sorted(first) == sorted(f"v5.2/{n}" for n in fake.served)
    again = fetch_classic_data(client, store, 1200)
    assert fake.state.downloads == first  # nothing downloaded twice in one round
    # The next round: a new live file; train/validation/features/meta-model are kept.
    newer = write_demo_classic(tmp_path / "round2", seed=99, train_eras=2, validation_eras=1, ids_per_era=60,
                               n_features=12, signal=0.5)
    fake.add_round_dataset("classic", 1201, "v5.2/live.parquet", newer.live.read_bytes())
    files = fetch_classic_data(client, store, 1201)
    assert sorted(fake.state.downloads[len(first):]) == ["v5.2/live.parquet", "v5.2/live_example_preds.parquet"]
    assert files.live.read_bytes() == newer.live.read_bytes() != again.live.read_bytes()
    assert files.train == again.train and again.live.exists()  # the old round's file is not overwritten


def test_a_validation_file_changed_within_a_version_is_downloaded_again_once(fake, client, store, tmp_path):
    files = fetch_classic_data(client, store, 1200)
    assert files.validation_last_era == max(pd.read_parquet(files.validation)["era"])
    first = list(fake.state.downloads)
    # Unchanged: Numerai's copy is asked (a one-byte ranged GET per growing file), nothing downloaded.
    fetch_classic_data(client, store, 1200)
    fetch_classic_data(client, store, 1201)
    assert fake.state.downloads[len(first):] == ["v5.2/live.parquet", "v5.2/live_example_preds.parquet"]
    assert {"v5.2/validation.parquet", "v5.2/meta_model.parquet"} <= set(fake.state.probes)
    # Numerai appends an era to validation (and the meta model) within v5.2.
    grown = write_demo_classic(tmp_path / "grown", seed=7, train_eras=12, validation_eras=7, ids_per_era=60,
                               n_features=12, signal=0.5)
    for path in (grown.validation, grown.meta_model):
        fake.add_dataset("classic", f"v5.2/{path.name}", path.read_bytes())
    before = len(fake.state.downloads)
    files = fetch_classic_data(client, store, 1201)
    assert sorted(fake.state.downloads[before:]) == ["v5.2/meta_model.parquet", "v5.2/validation.parquet"]
    assert files.validation.read_bytes() == grown.validation.read_bytes()
    assert files.validation_last_era == max(pd.read_parquet(grown.validation)["era"])
    # And once only: the next fetch reuses the new copy.
    before = len(fake.state.downloads)
    fetch_classic_data(client, store, 1201)
    assert fake.state.downloads[before:] == []


def test_a_copy_kept_from_before_the_check_is_judged_by_its_size(fake, client, store):
    files = fetch_classic_data(client, store, 1200)
    sidecar = files.validation.with_name("validation.parquet.remote.json")
    sidecar.unlink()  # as an earlier numerflow left it: no record of Numerai's copy
    before = len(fake.state.downloads)
    fetch_classic_data(client, store, 1200)
    assert fake.state.downloads[before:] == [] and sidecar.exists() is False  # same size: reused as it is


def test_damaged_local_file_is_quarantined_and_downloaded_again(fake, client, store):
    files = fetch_classic_data(client, store, 1200)
    files.train.write_bytes(b"truncated")
    files.features_json.write_text("{")
    before = len(fake.state.downloads)
    fetch_classic_data(client, store, 1200)
    assert sorted(fake.state.downloads[before:]) == ["v5.2/features.json", "v5.2/train.parquet"]
    assert files.train.read_bytes() == fake.served["train.parquet"]
    quarantined = sorted(p.name for p in (files.train.parent / "_quarantine").iterdir())
    assert any(n.startswith("train.parquet.") and not n.endswith(".why.txt") for n in quarantined)
    assert any(n.startswith("features.json.") and n.endswith(".why.txt") for n in quarantined)


def test_graphql_5xx_is_retried(fake, client, store, sleeps):
    fake.fail("listDatasets", "http", status=503, times=2)
    files = fetch_classic_data(client, store, 1200)
    assert files.version == "v5.2" and len(sleeps) == 2


def test_download_5xx_is_transient_and_leaves_nothing(fake, client, store):
    fake.fail("GET", "http", status=502)
    with pytest.raises(TransientError, match="download_failed.*HTTP 502"):
        fetch_classic_data(client, store, 1200)
    root = store.root / "numerai" / "classic" / "v5.2"
    assert not list(root.glob("*.parquet")) and not list(root.glob(".*"))  # no half-written file
    assert fetch_classic_data(client, store, 1200).train.exists()  # the retry succeeds


def test_download_404_is_a_clear_error(fake, client, store):
    fake.fail("GET", "http", status=404)
    with pytest.raises(BadInputError, match="download_failed.*HTTP 404"):
        fetch_classic_data(client, store, 1200)


def test_garbage_download_is_quarantined_and_refused(fake, client, store):
    fake.fail("GET", "garbage")
    with pytest.raises(TransientError, match="corrupt_download.*v5.2/train.parquet.*not a readable Parquet"):
        fetch_classic_data(client, store, 1200)
    root = store.root / "numerai" / "classic" / "v5.2"
    assert not (root / "train.parquet").exists()
    assert [p.name for p in (root / "_quarantine").iterdir() if not p.name.endswith(".why.txt")]


def test_no_complete_classic_version_is_a_clear_error(tmp_path, sleeps):
    with FakeNumeraiServer() as fake:
        fake.set_round("classic", open_round(7))
        fake.add_dataset("classic", "v5.2/features.json", b"{}")
        fake.add_dataset("classic", "v5.2/train.parquet", b"")
        fake.add_dataset("signals", "signals/v2.1/live.parquet", b"")
        client = NumeraiClient("classic", None, api_url=fake.url, timeout=5, sleep=sleeps.append)
        with pytest.raises(BadInputError, match="no_dataset.*classic.*all of.*live.parquet"):
            fetch_classic_data(client, Store(tmp_path), None)


def test_no_open_round_downloads_the_latest_live_every_time(fake, client, store):
    fake.set_round("classic", None)
    files = fetch_classic_data(client, store, None)
    assert files.round_number is None and files.live.parent.name == "round-latest"
    before = len(fake.state.downloads)
    fetch_classic_data(client, store, None)
    assert sorted(fake.state.downloads[before:]) == ["v5.2/live.parquet", "v5.2/live_example_preds.parquet"]


def test_a_signals_client_is_refused(fake, store):
    signals = NumeraiClient("signals", None, api_url=fake.url, timeout=5)
    with pytest.raises(BadInputError, match="wrong_tournament"):
        fetch_classic_data(signals, store, 1)


def test_pick_dataset_version_reads_prefixless_classic_names():
    names = ["v5.0/train.parquet", "v5.0/validation.parquet", "v5.0/live.parquet", "v5.0/features.json",
             "v5.1/live.parquet", "v10.0/features.json", "signals/v9.0/live.parquet"]
    assert pick_dataset_version(names, "classic") == "v5.1"  # any live file
    required = ("train.parquet", "validation.parquet", "live.parquet", "features.json")
    assert pick_dataset_version(names, "classic", required, all_required=True) == "v5.0"
    assert pick_dataset_version(names, "signals") == "signals/v9.0"
