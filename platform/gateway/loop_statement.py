"""Prepared statements, run from the event loop's thread on a PostgreSQL connection of the
loop's own (the gateway's bearer check and its generation; on a second one, the lease that
spares kept answers even the generation's read: gateway.bearer).

Handing each check to a worker thread, which checks a connection out of Django's pool, wraps
it in Django's cursor and hands it back, cost more CPU than the statement itself
(bench/gateway_calls.py). Here the loop sends the statement and reads its rows when the socket
says they have come, like any other I/O of the loop: nothing in the loop's thread waits for
PostgreSQL, so a slow or locked database holds up the checks that need it and nothing else.

The connection:

- is one more server connection per web process, outside Django's pool: the check never
  takes a pooled connection, so it cannot run the pool dry for the tools' own work; it is
  opened in a worker thread (connecting can wait), with Django's parameters, adapters and
  session settings (time zone, role: ``connect``);
- is in autocommit and runs these SELECTs only: it holds no snapshot and no lock between
  statements (but the lease's advisory lock, on the lease's connection), and each statement
  sees every commit made before it started;
- has the statements prepared once (PostgreSQL plans the join once per connection), and runs
  them in libpq's pipeline mode: several statements in flight at once, each with a sync point
  of its own (an error in one never aborts another), answers in the order sent;
- asks for the rows in binary: integers, booleans and times then cost neither the server a
  text rendering nor this process a parse (bench/gateway_calls.py: 3.6 -> 1.8 us to load the
  bearer check's row here); the connection's binary loaders must give what Django's text
  loaders give (gateway.bearer registers one for jsonb);
- is given up at its first fault (the server ended the session, a restart, an error of any
  kind): the statements in flight, and those sent until a new connection is open, answer None,
  and the caller runs them the usual way (gateway.bearer: a worker thread and
  a pooled connection, which answers, or fails as Django would). A new connection is opened in
  the background, at most once a second.
"""

import asyncio
import contextlib
import logging
import select
from collections import deque
from collections.abc import Callable, Sequence

import psycopg
from psycopg import pq
from psycopg.adapt import Transformer

logger = logging.getLogger(__name__)

_BINARY = pq.Format.BINARY
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_PIPELINE_SYNC = pq.ExecStatus.PIPELINE_SYNC
_RETRY_SECONDS = 1.0  # between failed attempts to open the connection


class LoopStatements:
    """``await rows(name, params)``: the rows of the prepared statement ``name`` (``$1``,
    ``$2``... as placeholders), sent in binary and loaded by the connection's binary loaders, as
    psycopg's cursor loads a binary cursor's rows; None when the connection cannot run it now
    (not open yet, or it failed).

    ``statements`` maps each statement's name to its SQL. ``connect`` runs in a worker thread
    and returns an open psycopg connection in autocommit. Use from one event loop at a time (a
    new loop starts over with a new connection). ``sessions`` counts the connections opened:
    whatever a caller learnt on one session, it can tell from what it learns on the next.
    """

    def __init__(
        self, statements: dict[bytes, str], connect: Callable[[], psycopg.Connection]
    ) -> None:
        self._statements = {name: sql.encode() for name, sql in statements.items()}
        self._connect = connect
        self.sessions = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: psycopg.Connection | None = None
        self._pgconn = None
        self._fd = -1
        self._poll: select.poll | None = None
        self._ending = False  # the server said it ends the session (read, not yet acted on)
        self._transformer: Transformer | None = None
        self._waiting: deque[asyncio.Future] = deque()  # one per statement in flight, in order
        self._result = None  # the oldest statement's result, until its sync point arrives
        self._opening: asyncio.Future | None = None
        self._retry_at = 0.0

    @property
    def backend_pid(self) -> int | None:
        """The server process of the open connection (None when there is none)."""
        return self._pgconn.backend_pid if self._pgconn is not None else None

    async def rows(self, name: bytes, params: Sequence[str]) -> list[tuple] | None:
        answer = self.send(name, params)
        return None if answer is None else await answer

    def send(self, name: bytes, params: Sequence[str]) -> asyncio.Future | None:
        """Send the statement now; a future of what ``rows`` answers, or None when the
        connection cannot run it now. Statements sent one after another run in that order."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self.close()
            self._loop = loop
        pgconn = self._pgconn
        if pgconn is None:
            self._open()
            return None
        try:
            pgconn.send_query_prepared(name, [p.encode() for p in params], result_format=_BINARY)
            pgconn.pipeline_sync()
            if pgconn.flush():  # the socket's buffer is full: send the rest when it can take it
                loop.add_writer(self._fd, self._writable)
                loop.call_soon(self._readable)  # libpq read what came meanwhile: parse it
        except psycopg.Error as exc:
            self._fail(exc)
            return None
        answer = loop.create_future()
        self._waiting.append(answer)
        return answer

    def quiet(self) -> bool:
        """Whether the connection is open and the server has sent nothing not yet read (no
        answer, no notice that it ends the session): one poll of the socket, no waiting."""
        return self._poll is not None and not self._ending and not self._poll.poll(0)

    async def open(self) -> bool:
        """Open the connection ahead of the first statement; whether it is open."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self.close()
            self._loop = loop
        self._open()
        if self._opening is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._opening)  # a cancelled caller leaves it be
        return self._pgconn is not None

    def _open(self) -> None:
        """Open a connection in a worker thread, unless one is being opened or the last
        attempt failed less than a second ago."""
        if self._opening is not None or self._loop.time() < self._retry_at:
            return
        self._opening = opening = self._loop.run_in_executor(None, self._connected)
        opening.add_done_callback(self._opened)

    def _connected(self) -> psycopg.Connection:
        """(In a worker thread.) A connection with the statements prepared, in pipeline mode."""
        conn = self._connect()
        try:
            pgconn = conn.pgconn
            for name, sql in self._statements.items():
                prepared = pgconn.prepare(name, sql)
                if prepared.status != pq.ExecStatus.COMMAND_OK:
                    raise psycopg.OperationalError(
                        prepared.get_error_message() or "a statement could not be prepared"
                    )
            pgconn.nonblocking = 1
            pgconn.enter_pipeline_mode()
        except BaseException:
            conn.close()
            raise
        return conn

    def _opened(self, opening: asyncio.Future) -> None:
        if opening is not self._opening:  # closed meanwhile (or a new loop)
            if not opening.cancelled() and opening.exception() is None:
                opening.result().close()
            return
        self._opening = None
        if opening.cancelled():
            return
        if (exc := opening.exception()) is not None:
            self._retry_at = self._loop.time() + _RETRY_SECONDS
            logger.warning("The gateway's PostgreSQL connection could not be opened: %s", exc)
            return
        self._conn = opening.result()
        self.sessions += 1
        self._pgconn = self._conn.pgconn
        self._fd = self._pgconn.socket
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self._ending = False
        self._conn.add_notice_handler(self._noticed)
        self._transformer = Transformer(self._conn)
        self._loop.add_reader(self._fd, self._readable)

    def _writable(self) -> None:
        try:
            if not self._pgconn.flush():
                self._loop.remove_writer(self._fd)
        except psycopg.Error as exc:
            self._fail(exc)
        else:
            self._readable()  # a flush that had to wait reads what came meanwhile into libpq

    def _readable(self) -> None:
        """Read what the server sent and answer the statements it completes."""
        pgconn = self._pgconn
        if pgconn is None:  # closed meanwhile
            return
        try:
            pgconn.consume_input()
            ended = False  # a statement's result is followed by one None, then its sync
            while self._waiting and not pgconn.is_busy():
                result = pgconn.get_result()
                if result is None:
                    if ended or self._result is None:
                        break  # nothing more has come (as psycopg's own pipeline reads)
                    ended = True
                    continue
                ended = False
                if result.status != _PIPELINE_SYNC:
                    if self._result is not None:
                        raise psycopg.OperationalError("more than one result")
                    self._result = result
                    continue
                done, self._result = self._result, None
                if done is None or done.status != _TUPLES_OK:
                    message = done.get_error_message() if done is not None else "no result"
                    raise psycopg.OperationalError(message)
                answer = self._waiting.popleft()
                if not answer.done():  # not cancelled (its request went away)
                    self._transformer.set_pgresult(done)
                    answer.set_result(self._transformer.load_rows(0, done.ntuples, tuple))
            # What came after the last answer (read with it) is parsed now, not at the next
            # read: a goodbye the server sent unasked (FATAL) reaches the notice handler.
            pgconn.is_busy()
            if pgconn.status != pq.ConnStatus.OK or self._ending:
                raise psycopg.OperationalError("the server ended the session")
        except psycopg.Error as exc:
            self._fail(exc)

    def _noticed(self, diagnostic) -> None:
        """(psycopg's notice handler, inside a libpq call.) An error the server sent while no
        statement ran comes as a notice: FATAL ends the session."""
        if diagnostic.severity_nonlocalized in ("FATAL", "PANIC"):
            self._ending = True

    def _fail(self, exc: psycopg.Error) -> None:
        """Give the connection up; every statement in flight answers None."""
        logger.info("The gateway's PostgreSQL connection is given up: %s", exc)
        waiting, self._waiting = self._waiting, deque()
        self.close()
        for answer in waiting:
            if not answer.done():
                answer.set_result(None)

    def close(self) -> None:
        """Close the connection (from the loop's thread); a statement in flight answers None."""
        conn, waiting = self._conn, self._waiting
        if conn is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._conn = self._pgconn = self._transformer = self._result = self._poll = None
        self._fd = -1
        self._waiting = deque()
        self._opening = None
        if conn is not None:
            conn.close()
        for answer in waiting:
            if not answer.done():
                answer.set_result(None)
