"""Which features a model uses: ``own`` (our price features), ``numerai`` (Numerai's), or ``both``.

Numerai's Signals v2.x files carry ~23 ``feature_*`` columns: in ``train.parquet`` /
``validation.parquet`` for history, and in ``live.parquet`` for every live ticker of the round
(its ``date`` is the market close the features use). Two of them are not numbers:
``feature_country`` and ``feature_exchange_code``. They become pandas ``category`` columns, which
LightGBM treats as categorical features (``categorical_feature="auto"``) and whose category lists
it stores in the model file, so a live frame's categories are mapped to the training ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from numerflow.tasks.core.errors import BadInputError

FEATURE_SETS = ("own", "numerai", "both")
NUMERAI_CATEGORICAL = ("feature_country", "feature_exchange_code")


def numerai_feature_names(path: Path) -> list[str]:
    """Numerai's feature columns of a train/validation/live file, in the file's order."""
    return [name for name in pq.read_schema(path).names if name.startswith("feature_")]


def categorical_features(features: Sequence[str]) -> list[str]:
    return [f for f in features if f in NUMERAI_CATEGORICAL]


def numeric_features(features: Sequence[str]) -> list[str]:
    return [f for f in features if f not in NUMERAI_CATEGORICAL]


def model_frame(frame: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """The model's input columns, Numerai's non-numeric ones as ``category`` (LightGBM categoricals)."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise BadInputError(f"the frame lacks the model's features {missing}", tag="feature_mismatch")
    x = frame[list(features)].copy()
    for name in categorical_features(features):
        x[name] = x[name].astype("string").astype("category")
    return x


def check_feature_set(feature_set: str) -> str:
    if feature_set not in FEATURE_SETS:
        raise BadInputError(f"unknown feature set {feature_set!r}; use one of {list(FEATURE_SETS)}",
                            tag="invalid_config")
    return feature_set
