"""Where a data set or a run directory lives: a pyarrow filesystem and a path on it.

`data.path`, `runs_dir` and the export/predict directories may be plain local paths or storage
URIs (`s3://bucket/runs`, `gs://...`, `file:///mnt/runs`, any scheme pyarrow or an installed
fsspec implementation resolves). Every read or write of those directories goes through a
`Location`, the pair Ray uses itself: Ray Train's `RunConfig(storage_path, storage_filesystem)`
and Ray Data's `read_parquet(paths, filesystem=...)` take exactly (filesystem, prefix-stripped
path), so the driver, the Ray Data read tasks and Ray Train's checkpoint uploads all see the
same storage.

Resolution (`location`):
- a plain path (no `://`) stays a local path: `LocalFileSystem`, the path as given (relative
  paths keep meaning the process's working directory, the rules of `core.paths`);
- a URI goes to `pyarrow.fs.FileSystem.from_uri` (file, s3, gs, hdfs, abfs...), then, for a
  scheme pyarrow does not know, to fsspec (`fsspec.core.url_to_fs`) behind
  `pyarrow.fs.PyFileSystem(FSSpecHandler(...))`; a scheme neither knows is a ConfigError naming
  the value and the scheme.

What cannot write to a remote filesystem writes into a local directory that is uploaded when
it is complete (`staged_dir`), and what can only read local files gets a local copy
(`local_copy`): torch.export's save/load, DCP checkpoints outside Ray Train (Ray Train stages
its own checkpoints the same way: workers write them locally and `ray.train.report` uploads).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.fs as pafs

from modules.strict import ConfigError

@dataclass(frozen=True)
class Location:
    """One file or directory: `filesystem` + `path` on it (prefix-stripped, as pyarrow and Ray
    take it) + the URI scheme it came from ("" for a plain local path)."""

    filesystem: pafs.FileSystem
    path: str
    scheme: str = ""

    def __str__(self) -> str:
        """The form a user wrote: the plain path, or `<scheme>://<path>` (joins back to a URI)."""
        return self.path if not self.scheme else f"{self.scheme}://{self.path}"

    @property
    def is_local(self) -> bool:
        """True on the local filesystem (a plain path, file://): `local` is then a path `open()` can use."""
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    @property
    def local(self) -> Path:
        """The local path of a local location; a ValueError for remote storage."""
        if not self.is_local:
            raise ValueError(f"{self}: not on the local filesystem")
        return Path(self.path)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    def child(self, *names: str) -> "Location":
        return Location(self.filesystem, posixpath.join(self.path, *names), self.scheme)

    def _fs_path(self) -> str:
        # pyarrow's LocalFileSystem wants absolute paths; a plain relative path means the cwd
        return os.path.abspath(self.path) if self.is_local else self.path

    def info(self) -> pafs.FileInfo:
        return self.filesystem.get_file_info(self._fs_path())

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

    def read_bytes(self) -> bytes:
        try:
            with self.filesystem.open_input_stream(self._fs_path()) as f:
                return f.read()
        except (FileNotFoundError, pa.ArrowException, OSError) as exc:
            raise ConfigError(f"{self}: cannot read ({exc})") from exc

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> None:
        """Writes the file (creating its parent directory on filesystems that have them)."""
        self.filesystem.create_dir(posixpath.dirname(self._fs_path()), recursive=True)
        with self.filesystem.open_output_stream(self._fs_path()) as f:
            f.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def mkdir(self) -> None:
        self.filesystem.create_dir(self._fs_path(), recursive=True)

    def remove(self) -> None:
        """Deletes the file, or the directory and everything under it; nothing when absent."""
        kind = self.info().type
        if kind == pafs.FileType.Directory:
            self.filesystem.delete_dir(self._fs_path())
        elif kind != pafs.FileType.NotFound:
            self.filesystem.delete_file(self._fs_path())

    def files(self, suffix: str = "", recursive: bool = False) -> list["Location"]:
        """Sorted files under this directory whose name ends with `suffix` ([] when it is not a directory)."""
        if not self.is_dir():
            return []
        infos = self.filesystem.get_file_info(pafs.FileSelector(self._fs_path(), recursive=recursive))
        base = self._fs_path()
        found = sorted(posixpath.relpath(i.path, base) for i in infos
                       if i.type == pafs.FileType.File and i.base_name.endswith(suffix))
        return [self.child(name) for name in found]

    def upload(self, local_dir: str | Path) -> None:
        """Copies the local directory's contents into this directory."""
        self.mkdir()
        pafs.copy_files(str(Path(local_dir).resolve()), self._fs_path(),
                        source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.filesystem)

    def download(self, local_dir: str | Path) -> Path:
        """Copies this directory's contents into the local directory; returns it."""
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        pafs.copy_files(self._fs_path(), str(Path(local_dir).resolve()), source_filesystem=self.filesystem,
                        destination_filesystem=pafs.LocalFileSystem())
        return Path(local_dir)

    def copy_file_from(self, local_file: str | Path) -> None:
        """Copies one local file to this location (streamed, creating the parent directory)."""
        self.filesystem.create_dir(posixpath.dirname(self._fs_path()), recursive=True)
        pafs.copy_files(str(Path(local_file).resolve()), self._fs_path(), source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.filesystem)


def is_uri(value: str | os.PathLike) -> bool:
    return "://" in str(value)


def location(value: str | os.PathLike | Location, key: str = "path") -> Location:
    """The Location of a plain path or a storage URI (module doc); `key` names the setting in errors.

    Raises ConfigError for a URI whose scheme neither pyarrow nor fsspec knows, or whose
    filesystem package is not installed.
    """
    if isinstance(value, Location):
        return value
    text = str(value)
    if not is_uri(text):
        return Location(pafs.LocalFileSystem(), text)
    scheme = text.split("://", 1)[0].lower()
    try:
        filesystem, path = pafs.FileSystem.from_uri(text)
        return Location(filesystem, path.rstrip("/") or path, scheme)
    except pa.ArrowInvalid as arrow_error:
        reason = str(arrow_error)
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(text)
    except ImportError as exc:  # a scheme fsspec knows whose package is missing (gcsfs, adlfs...)
        raise ConfigError(f"{key} {text!r}: scheme {scheme!r} needs a filesystem package: {exc}") from None
    except ValueError:
        raise ConfigError(f"{key} {text!r}: unknown storage scheme {scheme!r} (neither pyarrow.fs nor fsspec "
                          f"resolves it; pyarrow: {reason})") from None
    return Location(pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path.rstrip("/") or path, scheme)


def local_or_none(value: str | os.PathLike, key: str = "path") -> Path | None:
    """The local path of `value` (a plain path or file:// URI); None for remote storage."""
    place = location(value, key)
    return place.local if place.is_local else None


def local_path(value: str | os.PathLike, key: str, what: str) -> str:
    """`value` as a plain local path for code that reads and writes local files only (`what`,
    e.g. "compare"): a plain path unchanged, a file:// URI its path; a ConfigError naming `key`
    for any other storage URI."""
    if not is_uri(value):
        return str(value)
    place = location(value, key)
    if not place.is_local:
        raise ConfigError(f"{key} {str(value)!r}: {what} reads and writes local files only (a directory every "
                          f"node mounts); storage URIs work for train, evaluate, export and predict")
    return place.path


def arrow_paths(paths: list[str]) -> tuple[pafs.FileSystem | None, list[str]]:
    """(filesystem, paths) for Ray Data / pyarrow readers: (None, paths unchanged) for plain
    local paths (the readers' default handling, as before URIs), else the one filesystem of
    every path and the paths on it. Mixed storages are a ConfigError."""
    if not any(is_uri(p) for p in paths):
        return None, list(paths)
    places = [location(p) for p in paths]
    kinds = {(p.scheme, p.filesystem.type_name) for p in places}
    if len(kinds) > 1:
        raise ConfigError(f"files on several storages ({sorted(kinds)}): {paths[:3]}...")
    return places[0].filesystem, [p._fs_path() for p in places]


def ray_storage(runs_dir: str) -> tuple[str, pafs.FileSystem | None]:
    """`RunConfig(storage_path=..., storage_filesystem=...)` for `runs_dir`: a plain path
    absolute with no filesystem (Ray's own local handling), a URI as (path on its filesystem,
    filesystem), so Ray Train uploads checkpoints where Seesaw reads them."""
    place = location(runs_dir, "runs_dir")
    if not place.scheme:
        return str(Path(place.path).resolve()), None
    return place._fs_path(), place.filesystem


def open_input(path: str) -> str | pa.NativeFile:
    """What pyarrow's readers (`pq.ParquetFile`, `pq.read_table`, `pq.read_schema`) take for
    one file: a plain local path unchanged, a URI opened on its filesystem (random access)."""
    if not is_uri(path):
        return path
    place = location(path)
    try:
        return place.filesystem.open_input_file(place._fs_path())
    except (FileNotFoundError, pa.ArrowException, OSError) as exc:
        raise ConfigError(f"{path}: cannot open ({exc})") from exc


@contextlib.contextmanager
def staged_dir(target: str | Location) -> Iterator[Path]:
    """A local directory to write `target`'s files into: `target` itself when local (created),
    else a temporary directory uploaded to `target` when the block ends without an error."""
    place = location(target)
    if place.is_local:
        place.local.mkdir(parents=True, exist_ok=True)
        yield place.local
        return
    with tempfile.TemporaryDirectory(prefix="seesaw-stage-") as directory:
        yield Path(directory)
        place.upload(directory)


@contextlib.contextmanager
def local_copy(source: str | Location) -> Iterator[Path]:
    """A local directory holding `source`'s files: `source` itself when local, else a
    temporary download, deleted when the block ends."""
    place = location(source)
    if place.is_local:
        yield place.local
        return
    if not place.is_dir():
        raise ConfigError(f"{place}: directory not found")
    with tempfile.TemporaryDirectory(prefix="seesaw-copy-") as directory:
        yield place.download(directory)


def local_mirror(place: Location) -> Path:
    """A local directory standing in for a remote `place` where only local files work (log
    files a logging.FileHandler appends to): the same directory when local, else one under the
    temp dir named by the URI, the same for every process of the job on a node."""
    if place.is_local:
        return place.local
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(place))
    return Path(tempfile.gettempdir()) / "seesaw-mirror" / safe
