"""Error types shared by every stage.

Messages start with a fixed, searchable tag (``tag: what is wrong; what to do``), the
convention numerai-tools uses. The class says whether retrying can help:
``BadInputError`` never (retry_condition_fn refuses it), ``TransientError`` yes.
"""

from __future__ import annotations


class NumerflowError(Exception):
    """Base class: a problem numerflow understood and can explain to the user."""

    tag = "numerflow_error"

    def __init__(self, message: str, *, tag: str | None = None) -> None:
        if tag is not None:
            self.tag = tag
        super().__init__(f"{self.tag}: {message}")


class BadInputError(NumerflowError):
    """The input (data, options, files) is wrong. Retrying cannot help."""

    tag = "bad_input"


class TransientError(NumerflowError):
    """A network or service hiccup (timeout, 429, 5xx). Retrying may help."""

    tag = "transient"


def is_transient(exc: BaseException) -> bool:
    """True when retrying the failed step may succeed.

    Network-level failures from requests/httpx are transient; our own BadInputError and
    any other programming error are not.
    """
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, NumerflowError):
        return False
    try:
        import requests

        if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
            return True
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            return exc.response.status_code == 429 or exc.response.status_code >= 500
    except ImportError:  # pragma: no cover - requests is a hard dependency
        pass
    return isinstance(exc, (TimeoutError, ConnectionError))
