"""A request's own fault returned across a deployment call as a value, not raised.

Ray Serve logs every exception a replica method raises at ERROR, with its traceback, as a replica
failure. An empty text or a language no voice speaks is the client's 4xx, which the ingress logs
at INFO (issue 9, item 13); ``refusing`` methods hand such errors back as ``Refused`` and the
caller raises them with ``accepted``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tts_engine.errors import VoxServeError

T = TypeVar("T")


@dataclass(frozen=True)
class Refused:
    error: VoxServeError


def refusing(method: Callable[..., T]) -> Callable[..., T | Refused]:
    """Wrap a (sync) deployment method: a VoxServeError becomes its ``Refused`` value."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except VoxServeError as exc:
            return Refused(exc)

    return wrapper


def accepted(result: T | Refused) -> T:
    """The result of a ``refusing`` call, or its error raised here, in the caller."""
    if isinstance(result, Refused):
        raise result.error
    return result
