"""Read files from a folder or a zip archive the same way, refusing names that escape it.

Exports (Slack, document dumps) often arrive as zip files; a member named `../../x` or
`/etc/x` must never be read from or written to outside the export.
"""

from __future__ import annotations

import lzma
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath


class UnsafePath(ValueError):
    pass


def _safe(name: str) -> str:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafePath(f"'{name}' points outside the export (absolute or '..'); skipped")
    return str(path)


def check_size(size: int, max_bytes: float) -> None:
    """Refuse a file over the source's size limit, saying which setting raises it."""
    if size > max_bytes:
        raise ValueError(
            f"{size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit "
            "(raise sources[].max_file_mb to read it)"
        )


def _is_file(info: zipfile.ZipInfo) -> bool:
    # A damaged zip can hold a member with an empty name: is_dir() was an IndexError.
    return info.filename != "" and not info.is_dir()


class SourceTree:
    """Files under a folder or inside a zip archive, named by their relative POSIX path."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        self.root = root
        self.max_bytes = max_bytes
        try:
            self._zip = zipfile.ZipFile(root) if root.is_file() else None
        except (ValueError, IndexError, NotImplementedError, EOFError, OverflowError) as exc:
            # A damaged directory raises these too (an undecodable name, a "zip file
            # version 25.5"): uncaught, they were a crash; the callers report a bad zip.
            raise zipfile.BadZipFile(str(exc)) from exc
        # Members by the name `names()` gives them ('./a', 'x//a' -> 'a', 'x/a'): looked up
        # by the archive's own spelling, such a member was a KeyError.
        self._members: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist() if self._zip is not None else []:
            try:
                if _is_file(info):
                    self._members[_safe(info.filename)] = info
            except UnsafePath:
                pass  # never read; names() reports it

    def names(self) -> Iterator[tuple[str, str | None]]:
        """(name, problem): every file, with why it cannot be read when it cannot."""
        if self._zip is not None:
            for info in sorted(self._zip.infolist(), key=lambda i: i.filename):
                if not _is_file(info):
                    continue
                try:
                    yield _safe(info.filename), None
                except UnsafePath as exc:
                    yield info.filename, str(exc)
            return
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            if path.is_symlink() and not path.resolve().is_relative_to(self.root.resolve()):
                yield path.relative_to(self.root).as_posix(), "a link to outside the folder"
                continue
            yield path.relative_to(self.root).as_posix(), None

    def size(self, name: str) -> int:
        name = _safe(name)
        if self._zip is not None:
            return self._members[name].file_size
        return (self.root / name).stat().st_size

    def exists(self, name: str) -> bool:
        try:
            name = _safe(name)
        except UnsafePath:
            return False
        if self._zip is not None:
            return name in self._members
        return (self.root / name).is_file()

    def read(self, name: str) -> bytes:
        """The file's bytes; raises ValueError when it is over the size limit."""
        check_size(self.size(name), self.max_bytes)
        name = _safe(name)
        if self._zip is not None:
            try:
                return self._zip.read(self._members[name])
            except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError) as exc:
                # A corrupt or cut-off member (bad CRC, bad header, bad compressed data) was
                # uncaught; as a ValueError the callers skip the file and say why.
                raise ValueError(f"corrupt in the zip ({exc}); re-create the zip") from exc
            except (NotImplementedError, RuntimeError) as exc:  # a compression or encryption
                raise ValueError(f"cannot be read ({exc}); re-create the zip unencrypted") from exc
        return (self.root / name).read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
