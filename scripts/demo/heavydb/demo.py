"""The demo's HeavyDB (``npm run demo``): the stand-in of ``standin.py`` with a login and a few tables.

What it adds to the stand-in, as HeavyDB does it (ThriftHandler/DBHandler.cpp):

- ``connect(user, passwd, dbname)``: Immerse's login. HeavyDB's default superuser ``admin`` with
  ``HyperInteractive`` on database ``heavyai`` gets a new session (32 alphanumerics); anything else
  fails with a ``TDBException``.
- ``get_tables``: the demo tables below, named and shaped after HeavyDB's sample data sets
  (``flights_2008_10k``, ``nyc_trees_2015_683k``; a few columns and rows of each, made up).
- ``sql_execute``: ``SELECT <columns or *> FROM <table> [LIMIT <n>]`` on those tables. Other SQL
  fails with a ``TDBException`` saying what the stand-in answers; a table or column it does not
  have fails as HeavyDB says it.

Everything else (sessions, the recorded calls, the ``/_standin/`` control endpoints, never a
``disconnect`` from the notebook side) is the stand-in's. Run: ``python demo.py [--port N]``; prints
one JSON line ``{"url": ...}`` once listening on 127.0.0.1.
"""

from __future__ import annotations

import re
import secrets
import string
import sys

from standin import Handler, main
from heavydb.thrift import ttypes as T

#: HeavyDB's default superuser and database (a fresh install's, as its docs give them).
USERS = {"admin": "HyperInteractive"}
DATABASE = "heavyai"


def _flights():
    carriers = ["American Airlines", "Delta Air Lines", "Southwest Airlines", "United Airlines", "JetBlue Airways", "Alaska Airlines"]
    routes = [
        ("SFO", "San Francisco", "JFK", "New York", 2586),
        ("ORD", "Chicago", "LAX", "Los Angeles", 1745),
        ("ATL", "Atlanta", "DFW", "Dallas-Fort Worth", 731),
        ("SEA", "Seattle", "DEN", "Denver", 1024),
        ("BOS", "Boston", "MIA", "Miami", 1258),
        ("LAS", "Las Vegas", "PHX", "Phoenix", 256),
        ("IAH", "Houston", "MSP", "Minneapolis", 1034),
    ]
    rows = []
    for i in range(120):
        origin, origin_city, dest, dest_city, distance = routes[(i * 3) % len(routes)]
        depdelay = (i * 37) % 75 - 12
        rows.append((2008, 1 + i % 12, 1 + (i * 7) % 28, carriers[i % len(carriers)], origin, dest, origin_city, dest_city, distance, depdelay, depdelay + (i * 11) % 21 - 10))
    names = [
        ("flight_year", "SMALLINT"),
        ("flight_month", "SMALLINT"),
        ("flight_dayofmonth", "SMALLINT"),
        ("carrier_name", "STR"),
        ("origin", "STR"),
        ("dest", "STR"),
        ("origin_city", "STR"),
        ("dest_city", "STR"),
        ("distance", "SMALLINT"),
        ("depdelay", "SMALLINT"),
        ("arrdelay", "SMALLINT"),
    ]
    return [(name, kind, [row[i] for row in rows]) for i, (name, kind) in enumerate(names)]


def _trees():
    species = ["London planetree", "honeylocust", "Callery pear", "pin oak", "Norway maple", "littleleaf linden"]
    boroughs = ["Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island"]
    health = ["Good", "Good", "Fair", "Good", "Poor"]
    n = 40
    return [
        ("tree_id", "BIGINT", [180683 + i * 1031 for i in range(n)]),
        ("spc_common", "STR", [species[(i * 5) % len(species)] for i in range(n)]),
        ("health", "STR", [health[i % len(health)] for i in range(n)]),
        ("tree_dbh", "SMALLINT", [3 + (i * 7) % 30 for i in range(n)]),
        ("boroname", "STR", [boroughs[(i * 2) % len(boroughs)] for i in range(n)]),
        ("latitude", "DOUBLE", [round(40.58 + ((i * 13) % 29) * 0.01, 6) for i in range(n)]),
        ("longitude", "DOUBLE", [round(-74.15 + ((i * 17) % 31) * 0.01, 6) for i in range(n)]),
    ]


TABLES = {"flights_2008_10k": _flights(), "nyc_trees_2015_683k": _trees()}

_SELECT = re.compile(r"\s*SELECT\s+(?P<columns>\*|\w+(?:\s*,\s*\w+)*)\s+FROM\s+(?P<table>\w+)(?:\s+LIMIT\s+(?P<limit>\d+))?\s*;?\s*", re.I)
_ALNUM = string.ascii_letters + string.digits


class DemoHandler(Handler):
    tables = tuple(TABLES)

    def connect(self, user, passwd, dbname):
        self._state.record("connect", user=user, dbname=dbname)  # never the password
        if USERS.get(user) != passwd:
            raise T.TDBException(error_msg=f"Authentication failure for user {user}")  # no hint which part was wrong
        if dbname not in ("", DATABASE):
            raise T.TDBException(error_msg=f"Database name {dbname} does not exist.")
        session = "".join(secrets.choice(_ALNUM) for _ in range(32))
        self._state.add(session, {"user": user, "database": DATABASE, "superuser": True})
        return session

    def result_set(self, query):
        m = _SELECT.fullmatch(query)
        if not m:
            raise T.TDBException(
                error_msg="The demo's HeavyDB stand-in answers SELECT <columns or *> FROM <table> [LIMIT <n>] only "
                f"(tables: {', '.join(TABLES)}); run npm run demo with --heavydb URL for a real HeavyDB."
            )
        table = TABLES.get(m["table"].lower())
        if table is None:
            raise T.TDBException(error_msg=f"SQL Error: Object '{m['table']}' not found")
        by_name = {column[0]: column for column in table}
        wanted = list(by_name) if m["columns"] == "*" else [c.strip().lower() for c in m["columns"].split(",")]
        for name in wanted:
            if name not in by_name:
                raise T.TDBException(error_msg=f"SQL Error: Column '{name}' not found in any table")
        limit = int(m["limit"]) if m["limit"] is not None else None
        return [(name, by_name[name][1], by_name[name][2][:limit]) for name in wanted]


if __name__ == "__main__":
    sys.exit(main(DemoHandler))
