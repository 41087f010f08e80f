"""A cloud's own MariaDB database (Heat's state), made and dropped with the Heat venv's PyMySQL
(DISCO's own environment has no MySQL driver). MariaDB, not SQLite: Heat handles resources on
several threads, and SQLite answered `database is locked`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from disco.testbed.errors import TestbedError

HOST, PORT, USER = "127.0.0.1", 3306, "root"  # root with an empty password, on loopback only
_NAME = re.compile(r"^disco_cloud_[a-z0-9_]{1,40}$")

_SCRIPT = """
import sys, pymysql
action, name = sys.argv[1], sys.argv[2]
try:
    connection = pymysql.connect(host=%r, port=%d, user=%r, password="", connect_timeout=5)
except pymysql.MySQLError as exc:
    sys.exit(f"MariaDB on %s:%d: {exc}")
with connection.cursor() as cursor:
    if action == "create":
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    elif action == "drop":
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    else:
        cursor.execute("SHOW DATABASES LIKE %%s", (name,))
        print("yes" if cursor.fetchone() else "no")
""" % (HOST, PORT, USER, HOST, PORT)


def database_name(cloud_name: str) -> str:
    name = "disco_cloud_" + cloud_name.replace("-", "_")
    if not _NAME.match(name):
        raise TestbedError(f"cloud name {cloud_name!r} does not make a database name")
    return name


def database_url(name: str) -> str:
    return f"mysql+pymysql://{USER}@{HOST}:{PORT}/{name}?charset=utf8mb4"


def _run(venv: Path, action: str, name: str) -> str:
    if not _NAME.match(name):
        raise TestbedError(f"not a cloud database: {name!r}")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", _SCRIPT, action, name],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise TestbedError(f"database {name}: {action} failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def create_database(venv: Path, name: str) -> None:
    if _run(venv, "exists", name) == "yes":
        raise TestbedError(f"database {name} exists already: another cloud of that name is up, "
                           "or one was not brought down (`disco testbed cloud down`)")
    _run(venv, "create", name)


def drop_database(venv: Path, name: str) -> None:
    _run(venv, "drop", name)


def database_exists(venv: Path, name: str) -> bool:
    return _run(venv, "exists", name) == "yes"
