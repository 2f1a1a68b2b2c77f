"""The media store in a directory: `<dir>/<aa>/<bb>/<sha256>`, written atomically (a
temporary file in the same directory tree, flushed to disk, then renamed over)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from reengage.ports import MediaTooLarge, StoredFile

CHUNK = 1024 * 1024


class DirectoryMediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, stream: BinaryIO, max_bytes: int) -> StoredFile:
        staging = self.root / "tmp"
        staging.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, temp = tempfile.mkstemp(dir=staging, prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLarge(f"larger than {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            key = digest.hexdigest()
            if size == 0:  # nothing worth a file; the caller refuses it
                Path(temp).unlink()
                return StoredFile(key, 0, key)
            final = Path(self.path(key))
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, final)  # the same bytes: the same name, whole either way
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return StoredFile(key, size, key)

    def path(self, key: str) -> str:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a media key: {key[:80]!r}")
        return str(self.root / key[:2] / key[2:4] / key)
