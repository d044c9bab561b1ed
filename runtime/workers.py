"""Worker processes spoken to over a socket pair by the event loop itself, and a pool of them
taking jobs in batches (the relay's commit verifier, the appview's indexer).

concurrent.futures.ProcessPoolExecutor feeds its workers through two helper threads in the
serving process (a feeder and a manager), which cost it a tenth of a core or more at a few
thousand commits/s, and every result crosses back to the event loop through another GIL
hand-off. Here each worker is one spawned process holding one end of a socketpair; the loop
writes requests without blocking (what the socket does not take waits for `add_writer`) and
reads replies with `add_reader`. A frame is an 8-byte big-endian length and a pickle; replies
come in request order, so the worker needs no request ids.

`Pool` queues jobs while its workers are busy and sends them as one batch (one pickle round
trip for many); results come back as futures. A batch whose worker dies fails with
WorkerFailed (the caller then does the job itself) and a new worker takes the dead one's place.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_HEADER = struct.Struct("!Q")
_READ_SIZE = 1 << 18
# Seconds to wait for a worker that closed its end (it is exiting) before giving up on it.
_LOST_GRACE = 1.0
# spawn: the servers run threads (SQLite), which forking would copy mid-lock; a spawned worker
# also inherits no descriptor but its end of the pair (listening sockets, databases).
_SPAWN = multiprocessing.get_context("spawn")


class WorkerFailed(Exception):
    """A request that got no reply: the worker raised (the message is its traceback) or
    exited (killed, crashed) before answering."""


def _receive(sock: socket.socket) -> bytearray | None:
    """One frame from a blocking socket; None at the end of the stream."""
    header = _read_exactly(sock, _HEADER.size)
    return None if header is None else _read_exactly(sock, _HEADER.unpack(header)[0])


def _read_exactly(sock: socket.socket, size: int) -> bytearray | None:
    buffer = bytearray(size)
    with memoryview(buffer) as view:
        got = 0
        while got < size:
            n = sock.recv_into(view[got:])
            if n == 0:
                return None
            got += n
    return buffer


def _serve(sock: socket.socket, function: Callable[[Any], Any], niceness: int) -> None:
    """The worker's main: `function` on each request until the server closes its end."""
    os.nice(niceness)
    # Ctrl-C reaches the whole process group; the server stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with sock:
        try:
            while (request := _receive(sock)) is not None:
                try:
                    reply: tuple[bool, Any] = (True, function(pickle.loads(request)))
                except Exception:
                    reply = (False, traceback.format_exc())
                payload = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
                sock.sendall(_HEADER.pack(len(payload)) + payload)
        except OSError:
            return  # the server is gone


class Worker(Generic[T]):
    """One process running `function` on each request sent to it, in order.

    `send(request, tag)` queues a request; `on_reply(worker, tag, reply)` gets its reply in the
    loop, or a WorkerFailed when `function` raised. When the process is gone (its end of the
    pair closed), `on_lost(worker, tags)` gets the tags of every unanswered request.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        function: Callable[[Any], Any],
        niceness: int,
        on_reply: Callable[[Worker[T], T, Any], None],
        on_lost: Callable[[Worker[T], list[T]], None],
    ) -> None:
        self._loop = loop
        self._on_reply = on_reply
        self._on_lost = on_lost
        self.waiting: deque[T] = deque()  # tags of the requests sent and not yet answered
        self.answered = 0
        ours, theirs = socket.socketpair()
        with theirs:
            self.process = _SPAWN.Process(
                target=_serve,
                args=(theirs, function, niceness),
                name="skyloft-worker",
                # Should the server exit without stopping it, multiprocessing's exit hook
                # terminates a daemon (and would wait forever on any other).
                daemon=True,
            )
            try:
                self.process.start()
            except BaseException:
                ours.close()
                raise
        assert self.process.pid is not None
        self.pid = self.process.pid
        self.exitcode: int | None = None
        ours.setblocking(False)
        self._sock: socket.socket | None = ours
        self._fd = ours.fileno()
        self._inbox = bytearray()
        self._outbox = bytearray()
        loop.add_reader(self._fd, self._readable)

    def send(self, request: Any, tag: T) -> None:
        sock = self._sock
        assert sock is not None
        payload = pickle.dumps(request, pickle.HIGHEST_PROTOCOL)
        header = _HEADER.pack(len(payload))
        self.waiting.append(tag)
        if self._outbox:
            self._outbox += header
            self._outbox += payload
            return
        try:
            sent = sock.sendmsg([header, payload])
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return  # the worker is gone: the reader sees the end of its stream and reports it
        if sent < len(header):
            self._outbox += header[sent:]
            self._outbox += payload
        elif sent < len(header) + len(payload):
            self._outbox += memoryview(payload)[sent - len(header) :]
        else:
            return
        self._loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        assert self._sock is not None
        try:
            sent = self._sock.send(self._outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            sent = len(self._outbox)  # as in send: the reader reports the loss
        del self._outbox[:sent]
        if not self._outbox:
            self._loop.remove_writer(self._fd)

    def _readable(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lose()
            return
        inbox = self._inbox
        inbox += data
        while len(inbox) >= _HEADER.size:
            end = _HEADER.size + _HEADER.unpack_from(inbox)[0]
            if len(inbox) < end:
                break
            ok, reply = pickle.loads(inbox[_HEADER.size : end])
            del inbox[:end]
            self.answered += 1
            self._on_reply(self, self.waiting.popleft(), reply if ok else WorkerFailed(reply))
            if self._sock is None:
                return  # stopped by the callback

    def _lose(self) -> None:
        self._detach()
        self.process.kill()  # it closed its end: it is exiting, or broken past saving
        self.reap(time.monotonic() + _LOST_GRACE)
        tags = list(self.waiting)
        self.waiting.clear()
        self._on_lost(self, tags)

    def _detach(self) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._fd)
            if self._outbox:
                self._loop.remove_writer(self._fd)
            self._sock.close()
            self._sock = None
            self._outbox.clear()

    def stop(self) -> None:
        """Close our end and SIGTERM the process; `reap` then waits for it."""
        self._detach()
        self.process.terminate()

    def reap(self, deadline: float, grace: float = 1.0) -> None:
        """Wait for the process until `deadline` (time.monotonic), then SIGKILL it and wait
        up to `grace` more seconds."""
        if self.exitcode is not None:
            return
        process = self.process
        process.join(max(deadline - time.monotonic(), 0))
        if process.exitcode is None:
            process.kill()
            process.join(grace)
        self.exitcode = process.exitcode
        if self.exitcode is not None:
            process.close()


# Jobs per batch: enough to amortise the round trip, few enough to keep results flowing.
BATCH: Final = 64
# Batches in flight per worker: one running, one waiting, so a worker never idles.
DEPTH: Final = 2
# Seconds before replacing a worker that died without answering once: one that cannot start
# (a broken install, no memory) is not respawned in a tight loop.
RESTART_DELAY: Final = 1.0
# Seconds close() gives the workers to exit on SIGTERM before it kills them.
STOP_TIMEOUT: Final = 5.0

Batch = list[asyncio.Future[Any]]


class Pool(Generic[R]):
    """`workers` processes running `function` on batches of jobs (a sequence of jobs in, a list
    of results out, in order), at `niceness`. They start with the first job, in its event
    loop."""

    def __init__(
        self, function: Callable[[Sequence[Any]], list[R]], workers: int, niceness: int
    ) -> None:
        if workers < 0:
            raise ValueError("workers must not be negative")
        self.function = function
        self.workers = workers
        self.niceness = niceness
        self._loop: asyncio.AbstractEventLoop | None = None
        # One place per worker; None while its replacement is pending.
        self._slots: list[Worker[Batch] | None] = []
        self._queue: list[tuple[Any, asyncio.Future[R]]] = []
        self._closed = False

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [worker.pid for worker in self._slots if worker is not None]

    async def ready(self) -> None:
        """Start the workers now and wait until each has answered once (an empty batch) or
        died trying, so that the first jobs do not wait for them to start."""
        self._spawn()
        workers = [worker for worker in self._slots if worker is not None]
        for worker in workers:
            worker.send([], [])
        while any(not worker.answered and worker in self._slots for worker in workers):
            await asyncio.sleep(0.01)

    def submit(self, job: Any) -> asyncio.Future[R] | None:
        """Queue `job`; None when the caller must do it itself (no workers, or none running)."""
        if self._closed or not self.workers:
            return None
        self._spawn()
        assert self._loop is not None
        if not any(self._slots):  # every worker died and none has restarted yet
            return None
        done: asyncio.Future[R] = self._loop.create_future()
        self._queue.append((job, done))
        self._dispatch()
        return done

    def _spawn(self) -> None:
        if self._loop is None and not self._closed:
            self._loop = asyncio.get_running_loop()
            self._slots = [None] * self.workers
            for slot in range(self.workers):
                self._start(slot)

    def _start(self, slot: int) -> None:
        assert self._loop is not None
        if self._closed:
            return
        try:
            worker: Worker[Batch] = Worker(
                self._loop, self.function, self.niceness, self._answered, self._lost
            )
        except OSError as exc:
            log.error("cannot start a worker (%s); trying again", exc)
            self._loop.call_later(RESTART_DELAY, self._start, slot)
            return
        self._slots[slot] = worker
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue:
            idlest = None
            for worker in self._slots:
                if worker is not None and len(worker.waiting) < DEPTH:
                    if idlest is None or len(worker.waiting) < len(idlest.waiting):
                        idlest = worker
            if idlest is None:
                return
            batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
            idlest.send([job for job, _ in batch], [done for _, done in batch])

    def _answered(self, worker: Worker[Batch], batch: Batch, reply: list[R] | WorkerFailed) -> None:
        if isinstance(reply, WorkerFailed):
            _fail(batch, str(reply))
        else:
            for done, result in zip(batch, reply, strict=True):
                if not done.done():
                    done.set_result(result)
        if self._queue:
            self._dispatch()

    def _lost(self, worker: Worker[Batch], batches: list[Batch]) -> None:
        assert self._loop is not None
        slot = self._slots.index(worker)
        self._slots[slot] = None
        log.warning(
            "worker %d exited (code %s) with %d batches unanswered",
            worker.pid,
            worker.exitcode,
            len(batches),
        )
        for batch in batches:
            _fail(batch, f"worker {worker.pid} exited (code {worker.exitcode})")
        if worker.answered:
            self._start(slot)
        else:
            self._loop.call_later(RESTART_DELAY, self._start, slot)
        if not self.pids():
            # Nothing would take the queue before a restart: the callers do the jobs now.
            _fail([done for _, done in self._queue], "no worker running")
            self._queue.clear()

    async def close(self) -> None:
        """Stop the workers (SIGTERM, then SIGKILL after STOP_TIMEOUT) and cancel every job
        not answered yet. The processes are waited for in a thread, not on the event loop."""
        self._closed = True
        workers = [worker for worker in self._slots if worker is not None]
        self._slots = []
        for worker in workers:
            worker.stop()
        deadline = time.monotonic() + STOP_TIMEOUT
        await asyncio.to_thread(_reap, workers, deadline)
        for worker in workers:
            for batch in worker.waiting:
                for done in batch:
                    done.cancel()
        for _, done in self._queue:
            done.cancel()
        self._queue.clear()


def _reap(workers: list[Worker[Batch]], deadline: float) -> None:
    for worker in workers:
        worker.reap(deadline)


def _fail(batch: Batch, reason: str) -> None:
    for done in batch:
        if not done.done():
            done.set_exception(WorkerFailed(reason))
