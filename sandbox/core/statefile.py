"""The ``--state-file``: loaded at start, saved within a second of each change, without stopping the world.

A save has two steps. Under the store lock, :func:`snapshot` takes a copy that later changes
cannot reach; outside it, a writer process (``python -m sandbox.core.statefile PATH``) receives the
copy through a pipe, encodes it as JSON into a temp file in the same folder, fsyncs it and
renames it over the state file (``os.replace``), so a crash mid-save leaves the previous file
whole (the writer renames only once it has received the whole snapshot).

Why this snapshot (measured with 100 000 objects, 290 MB of JSON; ``python -m bench.sandbox_save``):

- ``json.dumps`` of everything under the lock (the old way) held every request for ~5 s.
- A deep or structural copy is slower still (6-16 s): it allocates millions of containers, and
  the cyclic garbage collector walks the whole heap again and again while it does.
- Objects are changed in place all over the sandbox, so there is no cheap way to know which
  ones changed (no copy-on-write of changed tables without wrapping every dict).
- ``marshal.dumps`` copies dicts, lists and strings into bytes at C speed and creates no
  containers; chunks of :data:`CHUNK` objects are as fast as one call per table (~0.2 s for
  140 MB of mutable objects). Events, half the state or more, are never changed after insert
  (see :mod:`sandbox.core.store`), so a shallow copy of their table is enough and costs nothing.

Why a writer process: encoding in a thread of the server, even one object at a time, competes
with the request threads for the GIL, and decoding the snapshot creates millions of containers
that set off full collections of the server's large heap (0.5-0.7 s pauses, every other save).
In its own process the encoding uses the other core and the server only pipes bytes.
"""

from __future__ import annotations

import gc
import itertools
import json
import marshal
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.core.store import IMMUTABLE_TABLES, STATE_VERSION, Store

# Objects per marshal chunk: big enough that the per-call cost vanishes (as fast as one call per
# table), small enough that decoding one chunk outside the lock keeps the GIL only for milliseconds.
CHUNK = 512
# A held save (the test hook) goes on by itself after this long, so a forgotten hold cannot wedge the server.
HOLD_LIMIT_SECONDS = 120.0
# The folder holding the ``sandbox`` package, for the writer process's ``python -m sandbox.core.statefile``.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
# Frames to the writer: a kind byte, an 8-byte length, the data.
TEXT, FIRST_PAIRS, PAIRS, END = b"T", b"F", b"P", b"E"


@dataclass
class Snapshot:
    """The state at one instant: marshalled dicts of :data:`CHUNK` entries, or a shallow copy of an immutable table."""

    tables: list[tuple[str, list[bytes] | dict]] = field(default_factory=list)
    meta: list[bytes] = field(default_factory=list)
    deleted: list[bytes] = field(default_factory=list)
    time_offset: int = 0
    extra: dict = field(default_factory=dict)


def _chunks(mapping: dict) -> list[bytes]:
    # One small dict per chunk, not a list of every item: a container per item would set off
    # full collections of the server's heap (see the module docstring).
    items = iter(mapping.items())
    chunks = []
    while chunk := dict(itertools.islice(items, CHUNK)):
        chunks.append(marshal.dumps(chunk))
    return chunks


def snapshot(store: Store) -> Snapshot:
    """Copy the state so that later changes cannot reach the copy; call it cheaply, under the lock."""
    with store.lock:
        store.dirty = False
        return Snapshot(
            tables=[
                (name, dict(table) if name in IMMUTABLE_TABLES else _chunks(table))
                for name, table in store.tables.items()
            ],
            meta=_chunks(store.meta),
            deleted=_chunks(store.deleted),
            time_offset=store.time_offset,
            extra={name: provide() for name, provide in store.extra_state.items()},
        )


def _frame(kind: bytes, data: bytes) -> bytes:
    return kind + len(data).to_bytes(8, "big") + data


def write(snap: Snapshot, path: str, midway: Callable[[], None] | None = None) -> None:
    """Have a writer process encode ``snap`` as the state file's JSON and replace ``path`` atomically.

    ``midway`` (a test hook) is called once the first table has gone to the writer, which waits for the rest.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
    writer = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "sandbox.core.statefile", path], stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        out = writer.stdin
        out.write(_frame(TEXT, f'{{"version": {STATE_VERSION}, "tables": {{'.encode()))
        for index, (name, part) in enumerate(snap.tables):
            out.write(_frame(TEXT, f"{', ' if index else ''}{json.dumps(name)}: ".encode()))
            _send_mapping(out, part)
            if index == 0 and midway is not None:
                out.flush()
                midway()
        out.write(_frame(TEXT, b'}, "meta": '))
        _send_mapping(out, snap.meta)
        out.write(_frame(TEXT, b', "deleted": '))
        _send_mapping(out, snap.deleted)
        tail = f', "time_offset": {json.dumps(snap.time_offset)}'
        tail += "".join(f", {json.dumps(name)}: {json.dumps(value)}" for name, value in snap.extra.items())
        out.write(_frame(TEXT, (tail + "}").encode()))
        out.write(_frame(END, b""))
        out.close()
    except BrokenPipeError:
        pass  # the writer died; its status and stderr say why
    finally:
        status = writer.wait()
        problem = writer.stderr.read().decode(errors="replace").strip()
        writer.stderr.close()
    if status != 0:
        raise OSError(f"the state writer failed (status {status}): {problem[-500:]}")


def _send_mapping(out, part: list[bytes] | dict) -> None:
    """Send a JSON object as chunks of pairs; an immutable table is chunked here, outside the lock."""
    chunks = _chunks(part) if isinstance(part, dict) else part
    out.write(_frame(TEXT, b"{"))
    for index, chunk in enumerate(chunks):
        out.write(_frame(FIRST_PAIRS if index == 0 else PAIRS, chunk))
    out.write(_frame(TEXT, b"}"))


def _read_frames(source) -> Iterator[tuple[bytes, bytes]]:
    while header := source.read(9):
        if len(header) < 9:
            break
        data = source.read(int.from_bytes(header[1:], "big"))
        yield header[:1], data


def _writer_main(path: str) -> int:
    """The writer process: frames from stdin to a temp file; renamed over ``path`` only if the END frame came."""
    gc.disable()  # a short-lived process making only acyclic JSON data: the cyclic collector would only cost time
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sandbox-state-", suffix=".tmp")
    complete = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8", buffering=1 << 20) as out:
            for kind, data in _read_frames(sys.stdin.buffer):
                if kind == TEXT:
                    out.write(data.decode())
                elif kind in (FIRST_PAIRS, PAIRS):
                    for index, (key, value) in enumerate(marshal.loads(data).items()):  # noqa: S302 (from our own server)
                        separator = "" if kind == FIRST_PAIRS and index == 0 else ", "
                        out.write(f"{separator}{json.dumps(key)}: {json.dumps(value)}")
                elif kind == END:
                    complete = True
                    break
            if not complete:
                print("sandbox state writer: the stream ended early; the state file is unchanged", file=sys.stderr)
                return 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    # The rename itself is durable only once the folder is synced.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return 0


class StateFile:
    """One store saved to one file: one save at a time, in snapshot order."""

    def __init__(self, store: Store, path: str):
        self.store = store
        self.path = path
        self.saves = 0
        self._saving = threading.Lock()
        self._held: threading.Thread | None = None
        self._release = threading.Event()
        store.state_file = self

    def load(self) -> bool:
        """Load the file if it exists; True if it did."""
        if not os.path.exists(self.path):
            return False
        self.store.load(self.path)
        return True

    def save(self, midway: Callable[[], None] | None = None) -> None:
        """Snapshot under the store lock, then encode and write without it."""
        with self._saving:
            snap = snapshot(self.store)
            write(snap, self.path, midway)
            self.saves += 1

    def autosave(self, stop: threading.Event, interval: float) -> None:
        """Save every ``interval`` seconds while something changed, until ``stop`` is set."""
        while not stop.wait(interval):
            if not self.store.dirty:
                continue
            try:
                self.save()
            except (OSError, ValueError) as error:
                self.store.dirty = True
                print(f"sandbox: could not save {self.path}: {error}", file=sys.stderr, flush=True)

    # the test hook of ``POST /_sandbox/state/save`` (``hold``, ``release``)

    def hold(self) -> None:
        """Start a save that stops after writing its first table, and return once it is there."""
        self.release()
        self._release.clear()
        parked = threading.Event()

        def midway() -> None:
            parked.set()
            self._release.wait(HOLD_LIMIT_SECONDS)

        self._held = threading.Thread(target=self.save, kwargs={"midway": midway}, name="sandbox-held-save")
        self._held.start()
        while not parked.wait(0.05):
            if not self._held.is_alive():
                break

    def release(self) -> None:
        """Let a held save finish, and wait for it."""
        held, self._held = self._held, None
        self._release.set()
        if held is not None:
            held.join()

    def status(self) -> dict:
        held = self._held is not None and self._held.is_alive()
        return {"object": "sandbox.state_save", "path": self.path, "saving": held, "saves": self.saves}


if __name__ == "__main__":
    sys.exit(_writer_main(sys.argv[1]))
