"""A synthetic Numerai Classic dataset in the real schemas, with a planted signal.

What it copies from Numerai's files (see tasks/classic/data.py): ``id`` index (``n`` + 15 hex
digits, unique per row), ``era`` zero-padded strings ("0001"…), ``data_type``, int8 features in
0..4 (5 equal bins per era), targets in {0, .25, .5, .75, 1} (Numerai's 5 unequal bins: 5%, 20%,
50%, 20%, 5%), ``target`` equal to the main target ``target_ender_20``, auxiliary ``_20`` and
``_60`` targets with some NaN (the main target never NaN), a ``features.json`` with
``feature_sets`` (small ⊂ medium ⊂ all) and ``targets``, a ``meta_model.parquet``
(``numerai_meta_model`` on the validation rows), a ``live.parquet`` of one era ``LIVE_ERA`` and the
example model's ``{validation,live}_example_preds.parquet`` (``prediction``).

The signal: the main target is a per-era ranked mix of ``signal`` × the mean of the first
``SIGNAL_FEATURES`` features and noise; with ``signal=0`` the targets are pure noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from numerflow.tasks.classic.data import ClassicFiles
from numerflow.tasks.core.store import write_parquet, write_text

#: The era label of the rows in ``live.parquet`` (live rows have no date of their own yet).
LIVE_ERA = "X"
MAIN_TARGET = "target_ender_20"
#: (name, weight of the planted signal relative to the main target's) of the auxiliary targets.
AUX_TARGETS = (("target_ender_60", 0.6), ("target_cyrusd_20", 0.8), ("target_cyrusd_60", 0.5))
SIGNAL_FEATURES = 5
#: Numerai's target bins and their shares per era.
TARGET_BINS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
TARGET_SHARES = np.array([0.05, 0.20, 0.50, 0.20, 0.05])

_WORDS = ("amber", "brisk", "civic", "dusky", "eager", "fluted", "gilded", "hollow", "ionic", "jovial",
          "knotty", "lunar", "mossy", "nimble", "ochre", "plush", "quartz", "russet", "sable", "tidal")


def feature_names(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct Numerai-style names (``feature_<word>_<word>_<word>``), reproducible."""
    rng = np.random.default_rng(seed)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        words = rng.choice(len(_WORDS), size=3)
        name = "feature_" + "_".join(_WORDS[w] for w in words) + f"_{len(names):04d}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _binned(latent: np.ndarray, era_codes: np.ndarray) -> np.ndarray:
    """Per-era ranks of ``latent`` mapped to Numerai's 5 unequal target bins (float32)."""
    order = np.lexsort((latent, era_codes))
    counts = np.bincount(era_codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.empty(latent.size, dtype=np.float64)
    position[order] = np.arange(latent.size) - np.repeat(starts, counts)
    fraction = (position + 0.5) / counts[era_codes]
    edges = np.cumsum(TARGET_SHARES)[:-1]
    return TARGET_BINS[np.searchsorted(edges, fraction)].astype(np.float32)


def _feature_bins(raw: np.ndarray, era_codes: np.ndarray) -> np.ndarray:
    """Per-era 5 equal bins (0..4, int8) of each column of ``raw``."""
    out = np.empty(raw.shape, dtype=np.int8)
    counts = np.bincount(era_codes)
    for j in range(raw.shape[1]):
        order = np.lexsort((raw[:, j], era_codes))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        position = np.empty(raw.shape[0], dtype=np.float64)
        position[order] = np.arange(raw.shape[0]) - np.repeat(starts, counts)
        out[:, j] = np.minimum((position * 5 // counts[era_codes]).astype(np.int8), 4)
    return out


def _noisy_ranks(rng: np.random.Generator, planted: np.ndarray, eras: pd.Series) -> np.ndarray:
    """Per-era ranks in (0, 1) of the planted signal plus as much noise (a plausible model)."""
    noisy = pd.Series(planted + rng.standard_normal(len(planted)))
    return noisy.groupby(eras.to_numpy()).rank(pct=True).to_numpy(np.float64)


def _ids(rng: np.random.Generator, n: int) -> np.ndarray:
    values = rng.choice(16 ** 8, size=n, replace=False)  # unique per row
    tails = rng.integers(0, 16 ** 7, size=n)
    return np.array([f"n{v:08x}{t:07x}" for v, t in zip(values, tails, strict=True)], dtype=object)


def _frame(rng: np.random.Generator, eras: list[str], ids_per_era: int, names: list[str], signal: float,
           data_type: str, *, with_targets: bool) -> tuple[pd.DataFrame, np.ndarray]:
    n = len(eras) * ids_per_era
    era_codes = np.repeat(np.arange(len(eras)), ids_per_era)
    features = _feature_bins(rng.standard_normal((n, len(names))), era_codes)
    frame = pd.DataFrame(features, columns=names)
    frame.insert(0, "data_type", data_type)
    frame.insert(0, "era", np.asarray(eras, dtype=object)[era_codes])
    frame.insert(0, "id", _ids(rng, n))
    planted = (features[:, :SIGNAL_FEATURES].astype(np.float64).mean(axis=1) - 2.0) / 0.63
    if with_targets:
        main = _binned(signal * planted + rng.standard_normal(n), era_codes)
        frame[MAIN_TARGET] = main
        for name, weight in AUX_TARGETS:
            aux = _binned(weight * signal * planted + rng.standard_normal(n), era_codes)
            aux[rng.random(n) < 0.02] = np.nan  # auxiliary targets can be NaN
            frame[name] = aux
        if data_type == "validation":  # a 60-day target is not known yet for the latest eras
            unknown = era_codes >= len(eras) - 3
            for name, _ in AUX_TARGETS:
                if name.endswith("_60"):
                    frame.loc[unknown, name] = np.nan
        frame["target"] = main
    return frame, planted


def write_demo_classic(directory: Path, *, seed: int = 42, train_eras: int, validation_eras: int,
                       ids_per_era: int, n_features: int, signal: float, version: str = "v5.2",
                       round_number: int | None = 1) -> ClassicFiles:
    """Synthetic Classic files in Numerai's real schemas under ``directory/<version>/`` (see the
    module docstring); returns their paths. ``live.parquet`` has ``ids_per_era`` rows of era
    ``LIVE_ERA``, no target values; ``meta_model.parquet`` a noisy copy of the planted signal."""
    if min(train_eras, validation_eras, ids_per_era) < 1 or n_features < SIGNAL_FEATURES:
        raise ValueError(f"need at least one era and id, and at least {SIGNAL_FEATURES} features")
    rng = np.random.default_rng(seed)
    root = Path(directory) / version
    names = feature_names(n_features, seed)
    labels = [f"{e:04d}" for e in range(1, train_eras + validation_eras + 1)]
    train, _ = _frame(rng, labels[:train_eras], ids_per_era, names, signal, "train", with_targets=True)
    validation, planted = _frame(rng, labels[train_eras:], ids_per_era, names, signal, "validation",
                                 with_targets=True)
    live, live_planted = _frame(rng, [LIVE_ERA], ids_per_era, names, signal, "live", with_targets=False)
    targets = [MAIN_TARGET, *(name for name, _ in AUX_TARGETS), "target"]
    for name in targets:  # live.parquet carries the target columns, empty
        live[name] = np.float32(np.nan)
    meta = validation[["id", "era", "data_type"]].copy()
    # Numerai's meta model is a per-era rank in (0, 1): here a noisy view of the planted signal.
    meta["numerai_meta_model"] = _noisy_ranks(rng, planted, meta["era"])
    # The example model's predictions (``id`` index, ``prediction``), like Numerai's example_preds files.
    validation_preds = validation[["id"]].assign(prediction=_noisy_ranks(rng, planted, validation["era"]))
    live_preds = live[["id"]].assign(prediction=_noisy_ranks(rng, live_planted, live["era"]))

    def write(frame: pd.DataFrame, name: str) -> Path:
        table = pa.Table.from_pandas(frame.set_index("id"), preserve_index=True)
        return write_parquet(root / name, table)

    small = names[: max(SIGNAL_FEATURES, n_features // 10)]
    medium = names[: max(len(small), n_features // 2)]
    metadata = {"feature_sets": {"small": small, "medium": medium, "all": names}, "targets": targets}
    features_json = write_text(root / "features.json", json.dumps(metadata, indent=1) + "\n")
    return ClassicFiles(version=version, train=write(train, "train.parquet"),
                        validation=write(validation, "validation.parquet"), live=write(live, "live.parquet"),
                        features_json=features_json, meta_model=write(meta, "meta_model.parquet"),
                        round_number=round_number,
                        validation_example_preds=write(validation_preds, "validation_example_preds.parquet"),
                        live_example_preds=write(live_preds, "live_example_preds.parquet"))
