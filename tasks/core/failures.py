"""One line per failure: what a user reads when a stage or a model fails.

``describe_failure`` turns an exception into a sentence: our own errors keep their tagged message;
LightGBM's refusals read as the model's failure, with LightGBM's reason and what to change; any
other error keeps its type and message. ``failure_stage`` / ``note_stage`` carry the name of the
stage an error left (the innermost one), so the command line can say where a round stopped.
"""

from __future__ import annotations

import re

from numerflow.tasks.core.errors import NumerflowError

# " at /__w/LightGBM/…/gbdt.cpp, line 65 ." ends LightGBM's checks: where in its C++, not what to do.
_SOURCE_LINE = re.compile(r"\s+at \S+\.(?:cpp|hpp|h|c), line \d+\s*\.?")
# LightGBM's reason → what to change. Numerai's targets are 0, .25, .5, .75, 1 (zeros included).
_LIGHTGBM_HINTS = [
    (re.compile(r"monotone_constraints", re.I),
     "give monotone_constraints one entry per feature (-1, 0 or 1), in the dataset's feature order, or drop it"),
    (re.compile(r"\(label\) > \(0\)|(gamma|poisson|tweedie).*(positive|negative)|should be (greater|positive)",
                re.I),
     "this objective needs positive targets and Numerai's include 0: use objective = \"regression\" (or huber)"),
    (re.compile(r"num_class|multiclass|label must be in", re.I),
     "the targets are continuous ranks, not classes: use objective = \"regression\""),
    (re.compile(r"binary|label should be 0 or 1|labels must be in \[0, 1\]", re.I),
     "the targets are ranks in [0, 1], not 0/1 labels: use objective = \"regression\" (or cross_entropy)"),
]


def describe_failure(exc: BaseException) -> str:
    """The exception as one line (no traceback)."""
    if isinstance(exc, NumerflowError):
        return str(exc)
    message = " ".join(str(exc).split())
    if type(exc).__name__ == "LightGBMError":
        message = _SOURCE_LINE.sub("", message).rstrip(" .")
        hint = next((h for pattern, h in _LIGHTGBM_HINTS if pattern.search(message)), None)
        return (f"lightgbm_refused: LightGBM could not train this model: {message}; "
                f"{hint or 'fix the LightGBM parameters in this model params (or [training].params)'}")
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def note_stage(exc: BaseException, name: str) -> None:
    """Remember the innermost stage ``exc`` left (an outer stage leaves the name as it is)."""
    if getattr(exc, "numerflow_stage", None) is None:
        try:
            exc.numerflow_stage = name  # type: ignore[attr-defined]
        except AttributeError:  # an exception type with __slots__: the stage is simply not named
            pass


def failure_stage(exc: BaseException) -> str | None:
    """The stage ``exc`` (or the exception it was raised from) left, if a stage noted it."""
    seen: BaseException | None = exc
    while seen is not None:
        name = getattr(seen, "numerflow_stage", None)
        if name:
            return str(name)
        seen = seen.__cause__ or seen.__context__
    return None
