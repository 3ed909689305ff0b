"""Applies mysql/migrations/NNNN_*.sql in order, each once: `python -m pushbox_core.schema`.

Creates the database when it is missing. Safe to run again: applied files are
recorded in `schema_migrations` and skipped.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pushbox_core.mysql import Database
from pushbox_core.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "mysql" / "migrations"
_DB_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def statements(sql: str) -> list[str]:
    """Split a migration file on the semicolons that end its statements."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


def create_database(settings: Settings) -> None:
    name = settings.mysql_database
    if not _DB_NAME.match(name):
        raise ValueError(f"unusable database name: {name!r}")
    server = Database.from_settings(settings, database=None)
    server.execute(
        f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    )
    server.close()


def drop_database(settings: Settings) -> None:
    name = settings.mysql_database
    if not _DB_NAME.match(name):
        raise ValueError(f"unusable database name: {name!r}")
    server = Database.from_settings(settings, database=None)
    server.execute(f"DROP DATABASE IF EXISTS `{name}`")
    server.close()


def migrate(settings: Settings) -> list[str]:
    """Apply what is missing; returns the names of the files applied now."""
    create_database(settings)
    db = Database.from_settings(settings)
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " name VARCHAR(200) NOT NULL PRIMARY KEY, applied_at DATETIME(6) NOT NULL"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )
    done = {row["name"] for row in db.query("SELECT name FROM schema_migrations")}
    applied = []
    for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        if path.name in done:
            continue
        for statement in statements(path.read_text()):
            db.execute(statement)
        db.execute(
            "INSERT INTO schema_migrations (name, applied_at) VALUES (%s, UTC_TIMESTAMP(6))",
            (path.name,),
        )
        applied.append(path.name)
    db.close()
    return applied


def main() -> int:
    settings = Settings.from_env()
    applied = migrate(settings)
    where = f"{settings.mysql_host}:{settings.mysql_port}/{settings.mysql_database}"
    if applied:
        print(f"schema: applied {', '.join(applied)} to {where}")
    else:
        print(f"schema: {where} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
