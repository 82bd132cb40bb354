"""Fsync of a directory: what makes a file's creation, rename or unlink durable.

POSIX keeps directory entries apart from file contents: after write-temp,
fsync, rename, the rename itself survives a power loss only once the
directory holding it is fsynced.  Every writer of the store (WAL, segment
files, index log, recovery) uses this one helper.
"""

from __future__ import annotations

import os

__all__ = ["fsync_dir"]


def fsync_dir(path: str) -> None:
    """Fsync the directory ``path``."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
