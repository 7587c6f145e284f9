"""Classic prediction neutralisation (tasks/classic/neutralize.py): per era against the model's int8
features (or named ones), numerai-tools' ``neutralize`` on each era, validation and live alike, in lineage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring as nt_scoring

from numerflow.tasks.classic.data import read_classic_frame
from numerflow.tasks.classic.demo import write_demo_classic
from numerflow.tasks.classic.neutralize import classic_against, neutralize_classic_live
from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import read_json, read_parquet

DEMO = {"demo_train_eras": 40, "demo_validation_eras": 12, "demo_ids_per_era": 200, "demo_features": 16,
        "demo_signal": 0.5}


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    return write_demo_classic(tmp_path_factory.mktemp("classic"), train_eras=30, validation_eras=6, ids_per_era=150,
                              n_features=10, signal=0.5)


def _features(path: Path) -> list[str]:
    return [c for c in read_parquet(path).columns if c.startswith("feature_")]


def test_against_is_the_models_own_features_or_named_columns_and_numerai_is_refused(demo_files):
    features = _features(demo_files.validation)
    own, other = features[:6], features[8]
    assert classic_against(["own"], own, demo_files.validation) == own
    assert classic_against(["own", other], own, demo_files.validation) == [*own, other]
    assert classic_against([other], own, demo_files.validation) == [other]
    with pytest.raises(BadInputError, match="feature_nope"):
        classic_against(["feature_nope"], own, demo_files.validation)
    with pytest.raises(BadInputError, match="Signals and Crypto"):
        classic_against(["numerai"], own, demo_files.validation)


def test_classic_preflight_accepts_own_and_names_and_refuses_numerai_and_a_table_entry_neutralizes(monkeypatch,
                                                                                                   tmp_path):
    from numerflow.tasks.round.models import round_models
    from numerflow.tasks.round.neutralization import check_neutralize

    monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(tmp_path))
    check_neutralize(load_settings(tournament="classic", neutralize={"proportion": 1, "against": ["own"]}))
    check_neutralize(load_settings(tournament="classic", neutralize={"proportion": 1, "against": ["feature_a"]}))
    with pytest.raises(BadInputError, match="Signals and Crypto"):
        check_neutralize(load_settings(tournament="classic", neutralize={"proportion": 1, "against": ["numerai"]}))
    settings = load_settings(tournament="classic", classic={"models": [
        {"name": "plain"}, {"name": "neutral", "neutralize": {"proportion": 0.5, "against": ["own"]}}]})
    plain, neutral = round_models(settings)
    assert plain.settings.neutralize.proportion == 0
    assert (neutral.settings.neutralize.proportion, neutral.settings.neutralize.against) == (0.5, ["own"])


@pytest.mark.parametrize("proportion", [0.0, 0.3, 1.0])
def test_live_predictions_equal_numerai_tools_neutralize_and_zero_changes_nothing(demo_files, proportion):
    features = _features(demo_files.live)[:7]
    live = read_classic_frame(demo_files.live, features, [])
    rng = np.random.default_rng(3)
    predictions = pd.DataFrame({"id": live.index.astype(str), "prediction": rng.normal(size=len(live))})
    shuffled = predictions.sample(frac=1.0, random_state=1).reset_index(drop=True)  # aligned by id, not by order
    ours = neutralize_classic_live({"proportion": proportion, "features": features}, demo_files.live, shuffled)
    assert ours["id"].tolist() == shuffled["id"].tolist()
    exposures = live.loc[shuffled["id"], features].astype("float64")
    theirs = nt_scoring.neutralize(shuffled[["prediction"]], exposures.reset_index(drop=True), proportion)
    assert np.allclose(ours["prediction"], theirs["prediction"], atol=1e-9)
    if proportion == 0:
        assert np.array_equal(ours["prediction"].to_numpy(), shuffled["prediction"].to_numpy())
    if proportion == 1:
        for name in features:
            assert abs(np.corrcoef(ours["prediction"], exposures[name])[0, 1]) < 1e-8


@pytest.mark.slow
def test_a_classic_demo_round_neutralizes_validation_and_live_alike_and_uploads_the_neutralized_file(
        prefect_harness, tmp_path, monkeypatch):
    from numerflow.flows.classic import classic_round_flow
    from numerflow.tasks.round.summary import summary_of

    monkeypatch.setenv("NUMERFLOW_CLASSIC__QUICK_NUM_BOOST_ROUND", "30")
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_THREADS", "1")
    overrides = {"classic": DEMO, "neutralize": {"proportion": 1.0, "against": ["own"]}}
    result = classic_round_flow(mode="demo", quick=True, data_dir=str(tmp_path / "data"), overrides=overrides)

    (run,) = result.models
    model = run.model
    meta = read_json(Path(model.model_dir) / "meta.json")
    assert meta["lineage"]["neutralize"] == {"proportion": 1.0, "against": ["own"]}
    features = meta["neutralization"]["features"]
    assert features == meta["features"]
    files = sorted((tmp_path / "data" / "numerai" / "classic-demo").glob("*/*/validation.parquet"))
    validation = read_classic_frame(files[0], features, ["target"])

    # Validation: neutralised per era; each era equals numerai-tools' neutralize of the raw predictions.
    assert meta["validation_predictions"].endswith("-neutralized.parquet")
    neutral = read_parquet(meta["validation_predictions"]).set_index("id")
    raw = read_parquet(meta["validation_predictions_raw"]).set_index("id")
    assert neutral.index.equals(raw.index) and neutral["era"].nunique() == DEMO["demo_validation_eras"]
    for era, rows in neutral.groupby("era"):
        exposures = validation.loc[rows.index, features].astype("float64")
        theirs = nt_scoring.neutralize(raw.loc[rows.index, ["prediction"]], exposures, 1.0)
        assert np.allclose(rows["prediction"], theirs["prediction"], atol=1e-9), era
        for name in features:
            assert abs(np.corrcoef(rows["prediction"], exposures[name])[0, 1]) < 1e-8, (era, name)

    # The figures: CORR, FNC and MMC recomputed on the neutralised predictions, the ones before kept.
    block = model.neutralization
    assert set(block["before"]) == set(block["after"]) == {"corr", "fnc", "mmc"}
    for name in ("corr", "mmc"):
        before, after = block["before"][name]["mean"], block["after"][name]["mean"]
        assert before is not None and after is not None and not math.isclose(before, after), name
    assert meta["validation_metrics"]["corr"] == block["after"]["corr"] == model.validation
    assert meta["validation_metrics"]["mmc"] == block["after"]["mmc"]
    text = summary_of(result)[1]
    corr_b, corr_a = block["before"]["corr"]["mean"], block["after"]["corr"]["mean"]
    mmc_b, mmc_a = block["before"]["mmc"]["mean"], block["after"]["mmc"]["mean"]
    assert "neutralized proportion 1 against own" in text
    assert f"CORR mean {corr_b:.5f} → {corr_a:.5f}" in text and f"MMC mean {mmc_b:.5f} → {mmc_a:.5f}" in text
    report = Path(model.report.markdown).read_text()
    assert "Neutralised per era" in report and f"MMC mean {mmc_b:.5f} → {mmc_a:.5f}" in report

    # Live: neutralised against the live era's features; the uploaded file is its rank.
    assert run.live.path.endswith("-neutralized.parquet")
    live = read_parquet(run.live.path).set_index("id")
    live_features = read_classic_frame(files[0].with_name("live.parquet"), features, []).loc[live.index]
    for name in features:
        assert abs(np.corrcoef(live["prediction"], live_features[name].astype("float64"))[0, 1]) < 1e-8, name
    submitted = pd.read_csv(run.submission.path).set_index("id")["prediction"]
    assert run.upload.status == "dry_run"
    assert submitted.loc[live.index].corr(live["prediction"], method="spearman") > 0.999
    record = json.loads((Path(run.submission.path).parent / "upload-record.json").read_text())
    assert record  # the demo's upload record of the neutralised file

    # Reused next round: the same lineage, the live predictions neutralised again from the model's record.
    again = classic_round_flow(mode="demo", quick=True, force=True, data_dir=str(tmp_path / "data"),
                               overrides=overrides)
    (second,) = again.models
    assert second.model.trained is False and second.model.neutralization["features"] == features
    assert second.live.path.endswith("-neutralized.parquet")


def test_classic_lineage_names_the_neutralisation_only_when_it_is_on(tmp_path, monkeypatch):
    from numerflow.tasks.classic.training import classic_lineage

    monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(tmp_path))
    off = classic_lineage(load_settings(tournament="classic"), "v5.2", ["feature_a"])
    on = classic_lineage(load_settings(tournament="classic", neutralize={"proportion": 0.5, "against": ["own"]}),
                         "v5.2", ["feature_a"])
    assert "neutralize" not in off
    assert on["neutralize"] == {"proportion": 0.5, "against": ["own"]}
    assert {k: v for k, v in on.items() if k != "neutralize"} == off
