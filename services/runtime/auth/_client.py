"""The client's bearer token: a fixed string, or a file re-read when it changes.

Example::

    source = TokenSource(path=Path("/run/secrets/token"))
    source.metadata()      # (("authorization", "Bearer eyJ..."),) or () when the file is empty
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TokenSource"]

_Metadata = tuple[tuple[str, str], ...]


class TokenSource:
    """Where a client's token comes from; :meth:`metadata` is what each call sends.

    A file is checked (one ``stat``) on every call and read again when its
    modification time, size or inode changed, so a rotated token is used at once.
    """

    def __init__(self, token: str | None = None, path: Path | None = None) -> None:
        if token is not None and path is not None:
            raise ValueError("give a token or a token file, not both")
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._metadata: _Metadata = _bearer(token)

    @property
    def enabled(self) -> bool:
        """True when calls carry (or may carry, once the file has one) a token."""
        return self._path is not None or bool(self._metadata)

    def metadata(self) -> _Metadata:
        """``(("authorization", "Bearer <token>"),)``, or ``()`` when there is none."""
        if self._path is not None:
            self._refresh(self._path)
        return self._metadata

    def _refresh(self, path: Path) -> None:
        try:
            info = os.stat(path)
        except OSError:
            self._stamp, self._metadata = None, ()
            return
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        if stamp != self._stamp:
            try:
                text = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                text = ""
            self._stamp, self._metadata = stamp, _bearer(text or None)


def _bearer(token: str | None) -> _Metadata:
    return (("authorization", f"Bearer {token}"),) if token else ()
