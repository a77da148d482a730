"""A HeavyDB stand-in that speaks HeavyDB's real wire protocol on a loopback port.

HeavyDB's HTTP port (6278) answers Thrift calls in Thrift's JSON protocol, POSTed over HTTP:
``[1,"get_session_info",1,0,{"1":{"str":"<id>"}}]`` -> ``[1,"get_session_info",2,0,{"0":{"rec":{...}}}]``,
or a ``TDBException`` ``{"1":{"rec":{"1":{"str":"<error_msg>"}}}}``. This server decodes and encodes
with the vendor's own generated code (pyheavydb's ``heavydb.thrift.Heavy.Processor``, which is
HeavyDB's ``heavy.thrift`` compiled) and Apache Thrift's ``TJSONProtocol``, so clients such as
``heavydb.connect(sessionid=..., protocol="http")`` talk to it as to a real server.

What the test controls, over JSON on the same port (paths under ``/_standin/``, never Thrift; or,
in-process, ``make_server(...).state``: ``add``, ``expire``, ``calls``):

- ``PUT /_standin/sessions/<id>`` ``{"user", "database", "roles": [...], "superuser"}``: a session
  (valid until removed); ``DELETE /_standin/sessions/<id>``: expire it as HeavyDB >= 6.2 does
  (every later call: ``Session not valid or expired.``); ``DELETE /_standin/sessions/<id>?as=idle``:
  as OmniSci and HeavyDB < 6.2 did (the next call: ``Idle Session Timeout. User should
  re-authenticate.``, then ``Session not valid.``); ``GET /_standin/sessions``;
- ``GET /_standin/calls``: every Thrift call so far, in order, ``{"method", "args": {...}}`` (args by
  the names in heavy.thrift, session ids included: this is a test double), including methods this
  stand-in does not implement and names heavy.thrift does not have (``{"unknown_method": true}``);
  ``DELETE /_standin/calls`` clears the list.

Implemented like HeavyDB (ThriftHandler/DBHandler.cpp): ``get_session_info``, ``get_tables``,
``get_version``, ``get_server_status``, ``get_status``, ``has_role``, ``sql_execute`` (the same small
result set for any query), ``disconnect`` (ends the session: a test asserts it is never called).
An invalid or expired session fails with HeavyDB's ``TDBException("Session not valid or
expired.")`` (ThriftHandler/DBHandler.cpp, get_session_ptr), or the older messages above; any other
method is recorded and fails with a ``TDBException`` saying it is not implemented here.

Run: ``python standin.py [--port N] [--host H]``; prints one JSON line ``{"url": ...}`` once listening on
H (127.0.0.1 by default).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from thrift.protocol import TJSONProtocol
from thrift.transport import TTransport

from heavydb.common import ttypes as C
from heavydb.thrift import Heavy
from heavydb.thrift import ttypes as T

VERSION = "8.0.1-standin"
INVALID_SESSION = "Session not valid or expired."
#: OmniSci / HeavyDB < 6.2: the call that finds a session idle too long, then any later call.
IDLE_TIMEOUT = "Idle Session Timeout. User should re-authenticate."
INVALID_SESSION_LEGACY = "Session not valid."

#: The result set of every query: (name, HeavyDB type, values).
RESULT = [
    ("id", "BIGINT", [1, 2, 3]),
    ("carrier", "STR", ["AA", "DL", "UA"]),
    ("delay_minutes", "DOUBLE", [12.5, 3.0, 41.25]),
]
_COLUMN_FIELD = {"SMALLINT": "int_col", "INT": "int_col", "BIGINT": "int_col", "STR": "str_col", "FLOAT": "real_col", "DOUBLE": "real_col"}
_DATUM_FIELD = {"SMALLINT": "int_val", "INT": "int_val", "BIGINT": "int_val", "STR": "str_val", "FLOAT": "real_val", "DOUBLE": "real_val"}


class State:
    """Sessions and recorded calls, shared by the Thrift handler and the control endpoints."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions: dict[str, dict] = {}
        #: Sessions expired the old way: True until the call that reports the idle timeout.
        self.idle: dict[str, bool] = {}
        self.calls: list[dict] = []
        self.started = int(time.time())

    def add(self, session_id: str, spec: dict) -> dict:
        """A valid session (``spec``: user, database, roles, superuser, start_time; defaults)."""
        session = {
            "user": str(spec.get("user", "admin")),
            "database": str(spec.get("database", "heavyai")),
            "roles": [str(r) for r in spec.get("roles", [])],
            "superuser": bool(spec.get("superuser", False)),
            "start_time": int(spec.get("start_time", time.time())),
        }
        with self.lock:
            self.sessions[session_id] = session
            self.idle.pop(session_id, None)
        return session

    def expire(self, session_id: str, idle: bool = False) -> bool:
        """Ends the session as HeavyDB >= 6.2 does, or (``idle``) as older versions did; whether it existed."""
        with self.lock:
            found = self.sessions.pop(session_id, None)
            if found and idle:
                self.idle[session_id] = True
        return found is not None

    def record(self, method: str, **args) -> None:
        with self.lock:
            self.calls.append({"method": method, "args": args})

    def session(self, session_id: str) -> dict:
        with self.lock:
            found = self.sessions.get(session_id)
            idle = self.idle.get(session_id)
            if idle:
                self.idle[session_id] = False
        if idle is not None:
            raise T.TDBException(error_msg=IDLE_TIMEOUT if idle else INVALID_SESSION_LEGACY)
        if found is None:
            raise T.TDBException(error_msg=INVALID_SESSION)
        return found


class Handler:
    """The Thrift service (heavy.thrift's ``Heavy``), as far as the tests need it."""

    def __init__(self, state: State) -> None:
        self._state = state

    def get_session_info(self, session):
        self._state.record("get_session_info", session=session)
        s = self._state.session(session)
        return T.TSessionInfo(
            user=s["user"], database=s["database"], start_time=s["start_time"], is_super=s["superuser"]
        )

    #: What get_tables lists.
    tables = ("flights",)

    def get_tables(self, session):
        self._state.record("get_tables", session=session)
        self._state.session(session)
        return list(self.tables)

    def get_version(self):
        self._state.record("get_version")
        return VERSION

    def _status(self):
        return T.TServerStatus(
            read_only=False,
            version=VERSION,
            rendering_enabled=False,
            start_time=self._state.started,
            edition="ce",
            host_name="heavydb-standin",
            poly_rendering_enabled=False,
            role=T.TRole.SERVER,
            renderer_status_json="",
            host_id="",
        )

    def get_server_status(self, session):
        self._state.record("get_server_status", session=session)
        self._state.session(session)
        return self._status()

    def get_status(self, session):
        self._state.record("get_status", session=session)
        self._state.session(session)
        return [self._status()]

    def has_role(self, session, granteeName, roleName):
        self._state.record("has_role", session=session, granteeName=granteeName, roleName=roleName)
        s = self._state.session(session)
        if not s["superuser"] and granteeName != s["user"]:
            raise T.TDBException(error_msg="Only super users can check other user's roles.")
        with self._state.lock:
            granted = any(
                roleName in other["roles"]
                for other in self._state.sessions.values()
                if other["user"] == granteeName
            )
        return granted

    def result_set(self, query):
        """The columns ``[(name, HeavyDB type, values)]`` that answer ``query``."""
        return RESULT

    def sql_execute(self, session, query, column_format, nonce, first_n, at_most_n):
        self._state.record(
            "sql_execute",
            session=session,
            query=query,
            column_format=column_format,
            nonce=nonce,
            first_n=first_n,
            at_most_n=at_most_n,
        )
        self._state.session(session)
        return query_result(self.result_set(query), column_format, nonce)

    def disconnect(self, session):
        self._state.record("disconnect", session=session)
        self._state.session(session)
        with self._state.lock:
            self._state.sessions.pop(session, None)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)

        def not_implemented(*args):
            self._state.record(name, positional=[_jsonable(a) for a in args])
            raise T.TDBException(error_msg=f"{name} is not implemented by the HeavyDB stand-in")

        return not_implemented


def query_result(result, column_format, nonce):
    """A TQueryResult of ``result`` (``[(name, HeavyDB type, values)]``), columnar or by rows as asked."""
    row_desc = [
        T.TColumnType(
            col_name=name,
            col_type=C.TTypeInfo(
                type=getattr(C.TDatumType, kind),
                encoding=C.TEncodingType.DICT if kind == "STR" else C.TEncodingType.NONE,
                nullable=True,
                is_array=False,
                precision=0,
                scale=0,
                comp_param=32 if kind == "STR" else 0,
                size=-1,
            ),
            is_reserved_keyword=False,
            src_name="",
            is_system=False,
            is_physical=False,
            col_id=i,
        )
        for i, (name, kind, _) in enumerate(result)
    ]
    nrows = len(result[0][2]) if result else 0
    columns, rows = [], []
    if column_format:
        for _, kind, values in result:
            data = {"int_col": [], "real_col": [], "str_col": [], "arr_col": []}
            data[_COLUMN_FIELD[kind]] = list(values)
            columns.append(T.TColumn(data=T.TColumnData(**data), nulls=[False] * nrows))
    else:
        for r in range(nrows):
            cols = []
            for _, kind, values in result:
                val = {"int_val": 0, "real_val": 0.0, "str_val": "", "arr_val": []}
                val[_DATUM_FIELD[kind]] = values[r]
                cols.append(T.TDatum(val=T.TDatumVal(**val), is_null=False))
            rows.append(T.TRow(cols=cols))
    return T.TQueryResult(
        row_set=T.TRowSet(row_desc=row_desc, rows=rows, columns=columns, is_columnar=bool(column_format)),
        execution_time_ms=1,
        total_time_ms=1,
        nonce=nonce or "",
        debug="",
        success=True,
        query_type=T.TQueryType.READ,
    )


def _jsonable(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "__dict__"):
        return {k: _jsonable(v) for k, v in vars(value).items()}
    return repr(value)


def make_server(port: int = 0, handler: type = Handler, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    state = State()
    processor = Heavy.Processor(handler(state))
    control = "/_standin/"

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: the test reads the calls, not an access log
            pass

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value) -> None:
            self._send(status, json.dumps(value).encode(), "application/json")

        def _control(self, method: str) -> None:
            path, _, query = self.path[len(control) :].partition("?")
            if path == "calls" and method == "GET":
                with state.lock:
                    return self._json(200, list(state.calls))
            if path == "calls" and method == "DELETE":
                with state.lock:
                    state.calls.clear()
                return self._json(200, {})
            if path == "sessions" and method == "GET":
                with state.lock:
                    return self._json(200, dict(state.sessions))
            if path.startswith("sessions/") and method in ("PUT", "DELETE"):
                session_id = unquote(path[len("sessions/") :])
                if not session_id:
                    return self._json(400, {"error": "empty session id"})
                if method == "DELETE":
                    return self._json(200 if state.expire(session_id, idle=query == "as=idle") else 404, {})
                try:
                    return self._json(200, state.add(session_id, json.loads(self._body() or b"{}")))
                except (ValueError, TypeError, AttributeError) as e:
                    return self._json(400, {"error": f"bad session: {e}"})
            return self._json(404, {"error": f"no control endpoint {method} {self.path}"})

        def _control_only(self, method: str, refusal: bytes = b"") -> None:
            """Methods other than POST reach the control endpoints only."""
            if self.path.startswith(control):
                return self._control(method)
            self._send(405, refusal, "text/plain")

        def do_GET(self):
            self._control_only("GET", b"HeavyDB stand-in: POST Thrift JSON\n")

        def do_DELETE(self):
            self._control_only("DELETE")

        def do_PUT(self):
            self._control_only("PUT")

        def do_POST(self):
            if self.path.startswith(control):
                return self._control("POST")
            body = self._body()
            try:  # a method heavy.thrift does not have: the Processor answers UNKNOWN_METHOD; record it too
                name = json.loads(body)[1]
                if isinstance(name, str) and name not in processor._processMap:
                    state.record(name, unknown_method=True)
            except (ValueError, IndexError, KeyError, TypeError):
                pass
            itrans = TTransport.TMemoryBuffer(body)
            otrans = TTransport.TMemoryBuffer()
            try:
                processor.process(TJSONProtocol.TJSONProtocol(itrans), TJSONProtocol.TJSONProtocol(otrans))
            except Exception as e:  # undecodable request: HeavyDB's THttpServer drops it too
                return self._send(400, f"bad Thrift request: {type(e).__name__}\n".encode(), "text/plain")
            self._send(200, otrans.getvalue(), "application/x-thrift")

    server = ThreadingHTTPServer((host, port), RequestHandler)
    server.state = state  # for tests that run the stand-in in their own process
    return server


def main(handler: type = Handler) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    # 0.0.0.0 only where the network is the test's own (a pod on the one-node cluster).
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = make_server(args.port, handler, args.host)
    server.daemon_threads = True
    print(json.dumps({"url": f"http://{args.host}:{server.server_address[1]}/"}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
