"""The files of an upgrade (:class:`UpgradeFiles`: the new file, partial and complete, the state, the kept old file)
and what is done to them: permissions, a second name, durability."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

__all__ = ["Step", "UpgradeFiles", "fsync", "keep", "same_owner"]


class Step(StrEnum):
    """The steps of an upgrade, told (``on_step``) as each begins."""

    BACKUP = "backup"
    COPY = "copy"
    CHECKPOINT = "checkpoint"
    VERIFY = "verify"
    KEEP = "keep"
    SWAP = "swap"


@dataclass(frozen=True)
class UpgradeFiles:
    """The files of an upgrade of the store at ``store``."""

    store: Path

    def _beside(self, suffix: str) -> Path:
        return self.store.with_name(f"{self.store.name}{suffix}")

    @property
    def wal(self) -> Path:
        return self._beside(".wal")

    @property
    def partial(self) -> Path:
        """The new file while it is written."""
        return self._beside(".upgrading")

    @property
    def ready(self) -> Path:
        """The new file, complete (checkpointed and closed), until it is swapped in."""
        return self._beside(".upgraded")

    @property
    def state(self) -> Path:
        return self._beside(".upgrade.json")

    def kept(self, version: str) -> Path:
        """The name the old file, in format ``version``, is kept under (``tams.duckdb.v1-before-upgrade``)."""
        major = version.lstrip("v").split(".", 1)[0]
        return self._beside(f".v{major}-before-upgrade")

    def kept_found(self) -> Path | None:
        """An old file an upgrade kept, if there is one."""
        return next(iter(sorted(self.store.parent.glob(f"{self.store.name}.v*-before-upgrade"))), None)

    def leftovers(self) -> tuple[Path, ...]:
        """What a run that did not finish may leave: the new file, partial or complete, and its WAL."""
        return tuple(f.with_name(f"{f.name}{wal}") for f in (self.partial, self.ready) for wal in ("", ".wal"))

    def staged(self) -> tuple[Path, ...]:
        """Files a run writes under another name first, then renames (what a SIGKILL meanwhile leaves)."""
        return (
            self.state.with_name(f"{self.state.name}.tmp"),
            *self.store.parent.glob(f"{self.store.name}.v*-before-upgrade.tmp"),
        )


def same_owner(store: Path, new: Path) -> None:
    """Give the new file the store's permissions and (when this process may: root) its owner and group, so that the
    server's user opens it as it opened the store."""
    st = store.stat()
    os.chmod(new, st.st_mode & 0o7777)
    if (new.stat().st_uid, new.stat().st_gid) != (st.st_uid, st.st_gid):
        with contextlib.suppress(PermissionError):
            os.chown(new, st.st_uid, st.st_gid)


def keep(store: Path, kept: Path) -> None:
    """Give the old file its kept name too: a hard link (no copy, no space), or on a filesystem without them a
    copy, made whole under another name first."""
    try:
        os.link(store, kept)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK, errno.EOPNOTSUPP):
            raise
        staged = kept.with_name(f"{kept.name}.tmp")
        shutil.copyfile(store, staged)
        fsync(staged)
        os.replace(staged, kept)
    fsync(store.parent)


def fsync(path: Path) -> None:
    """Make ``path`` (a file, or a folder's entries) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
