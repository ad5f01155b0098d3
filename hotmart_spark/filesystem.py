"""Files on any filesystem Hadoop knows (local, HDFS, S3A, ABFS...), through the FileSystem
Spark itself uses, so that one URI names a whole output root: its tables, manifest, lock,
staging area, insights and report. Paths are strings: a local path or a URI.

Every call needs a running SparkSession (the JVM holds the filesystem clients and their
settings: the cluster's core-site.xml, the session's spark.hadoop.* options).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from py4j.protocol import Py4JJavaError
from pyspark import SparkContext


def is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def local_path(path: str) -> Path:
    return Path(urlparse(path).path if path.startswith("file:") else path)


def shown(path: str) -> str:
    """path as a user names it: a local path without its file: scheme, any other URI whole."""
    return str(local_path(path)) if is_local(path) else path


def join(root: str, *names: str) -> str:
    return "/".join([root.rstrip("/"), *(name.strip("/") for name in names)])


def _context() -> SparkContext:
    context = SparkContext._active_spark_context
    if context is None:
        raise RuntimeError("files under an output root are reached through a running Spark")
    return context


def _jvm() -> Any:
    return _context()._jvm


def _hadoop_path(path: str) -> Any:
    return _jvm().org.apache.hadoop.fs.Path(path)


def _hadoop_filesystem(path: str) -> Any:
    """The Hadoop FileSystem holding path, as Spark itself sees it; on a local disk, Hadoop's
    raw one (the default wraps it to write a .crc file beside every file, and its rename is
    not the kernel's atomic replace)."""
    context = _context()
    if is_local(path):
        if _RAW_LOCAL.get("context") is not context:
            raw = context._jvm.org.apache.hadoop.fs.RawLocalFileSystem()
            raw.initialize(
                context._jvm.java.net.URI("file:///"), context._jsc.hadoopConfiguration()
            )
            _RAW_LOCAL.update(context=context, fs=raw)
        return _RAW_LOCAL["fs"]
    return _hadoop_path(path).getFileSystem(context._jsc.hadoopConfiguration())


_RAW_LOCAL: dict[str, Any] = {}


def _at(path: str) -> tuple[Any, Any]:
    return _hadoop_filesystem(path), _hadoop_path(path)


def qualified(path: str) -> str:
    """path as a full URI (a relative local path made absolute): one spelling per place."""
    fs, hpath = _at(path)
    return str(fs.makeQualified(hpath).toString())


def exists(path: str) -> bool:
    fs, hpath = _at(path)
    return bool(fs.exists(hpath))


def is_dir(path: str) -> bool:
    fs, hpath = _at(path)
    return bool(fs.isDirectory(hpath))


def is_file(path: str) -> bool:
    fs, hpath = _at(path)
    return bool(fs.isFile(hpath))


def mkdirs(path: str) -> None:
    fs, hpath = _at(path)
    if not fs.mkdirs(hpath):
        raise OSError(f"cannot create the folder {shown(path)}")


def children(path: str) -> list[str]:
    """The names in the folder at path; none when there is no such folder."""
    fs, hpath = _at(path)
    if not fs.isDirectory(hpath):
        return []
    return sorted(str(status.getPath().getName()) for status in fs.listStatus(hpath))


def delete(path: str) -> None:
    """Remove the file or folder (with everything in it) at path, if there is one."""
    fs, hpath = _at(path)
    fs.delete(hpath, True)


def modified_at(path: str) -> float | None:
    """When the file at path was last changed (seconds since the epoch); None if it is gone."""
    fs, hpath = _at(path)
    try:
        return fs.getFileStatus(hpath).getModificationTime() / 1000.0
    except Exception as exc:
        if _java_class(exc) == "java.io.FileNotFoundException":
            return None
        raise


def touch(path: str) -> None:
    """Set the file's modification time to now."""
    fs, hpath = _at(path)
    fs.setTimes(hpath, int(time.time() * 1000), -1)


def read_bytes(path: str) -> bytes | None:
    """The content of the file at path; None when there is no such file."""
    fs, hpath = _at(path)
    try:
        stream = fs.open(hpath)
    except Exception as exc:
        if _java_class(exc) == "java.io.FileNotFoundException":
            return None
        raise
    try:
        return bytes(_jvm().org.apache.commons.io.IOUtils.toByteArray(stream))
    finally:
        stream.close()


def write_bytes(path: str, data: bytes) -> None:
    """Replace the file at path whole: a reader sees the old or the new content, never half
    (written beside it, then renamed over it; atomic on a local disk and on HDFS)."""
    partial = f"{path}.{secrets.token_hex(4)}.partial"
    fs, hpartial = _at(partial)
    out = fs.create(hpartial, True)
    try:
        out.write(bytearray(data))
    finally:
        out.close()
    try:
        _rename_over(partial, path)
    except BaseException:
        fs.delete(hpartial, False)
        raise


def _rename_over(source: str, target: str) -> None:
    fs = _hadoop_filesystem(target)
    if is_local(target):
        # rename(2), which replaces the target atomically; FileContext's rename on the local
        # disk costs about 50 ms a file for the checksum files it looks for.
        if not fs.rename(_hadoop_path(source), _hadoop_path(target)):
            raise OSError(f"cannot move {shown(source)} over {shown(target)}")
        return
    jvm = _jvm()
    rename = jvm.org.apache.hadoop.fs.Options.Rename
    options = _context()._gateway.new_array(rename, 1)
    options[0] = rename.OVERWRITE
    context = jvm.org.apache.hadoop.fs.FileContext.getFileContext(
        _hadoop_path(target).toUri(), _context()._jsc.hadoopConfiguration()
    )
    context.rename(_hadoop_path(source), _hadoop_path(target), options)


def create_new(path: str, data: bytes) -> bool:
    """Create the file at path holding data, only if there is none: of two callers at once,
    exactly one gets True. On a local disk that is the kernel's O_EXCL; on HDFS the
    namenode's create without overwrite. (An object store has no such primitive: there the
    scheduler must start one run per root at a time.)"""
    if is_local(path):
        try:
            handle = os.open(local_path(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        return True
    fs, hpath = _at(path)
    try:
        out = fs.create(hpath, False)
    except Exception as exc:
        if _java_class(exc) == "org.apache.hadoop.fs.FileAlreadyExistsException":
            return False
        raise
    try:
        out.write(bytearray(data))
    finally:
        out.close()
    return True


def rename(source: str, target: str) -> None:
    """Move the file or folder at source to target, which must not exist (its parent is
    made): one rename, atomic on a local disk and on HDFS."""
    fs, hsource = _at(source)
    htarget = _hadoop_path(target)
    try:
        fs.mkdirs(htarget.getParent())
        moved = fs.rename(hsource, htarget)
    except Py4JJavaError as exc:
        raise OSError(
            f"cannot move {shown(source)} to {shown(target)}: {exc.java_exception}"
        ) from None
    if not moved:
        raise OSError(f"cannot move {shown(source)} to {shown(target)}")


def copy_tree(source: str, target: str) -> None:
    """A copy of the folder at source as target. On a local disk by hard links: the files
    under an output root are replaced, never changed, so a link costs neither a copy nor
    space. Elsewhere (HDFS and object stores have no links) a copy through Hadoop."""
    if is_local(source) and is_local(target):
        shutil.copytree(local_path(source), local_path(target), copy_function=os.link)
        return
    fs, hsource = _at(source)
    target_fs, htarget = _at(target)
    configuration = _context()._jsc.hadoopConfiguration()
    copied = _jvm().org.apache.hadoop.fs.FileUtil.copy(
        fs, hsource, target_fs, htarget, False, configuration
    )
    if not copied:
        raise OSError(f"cannot copy {shown(source)} to {shown(target)}")


def _java_class(exc: BaseException) -> str | None:
    """The class of the Java exception behind a Py4J error, or None for a Python one."""
    java = getattr(exc, "java_exception", None)
    with contextlib.suppress(Exception):
        return str(java.getClass().getName()) if java is not None else None
    return None
