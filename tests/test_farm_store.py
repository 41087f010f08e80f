"""The farm's store on SQLite and PostgreSQL: its migrations apply beside the service manager's
(own version table), and compare-and-set changes a row once."""

from __future__ import annotations

from sqlalchemy import inspect, select

from farm_fixtures import db_url  # noqa: F401  (a fixture)
from disco.cluster.store import Store
from disco.taskfarm.models import Instance, Project, Unit
from disco.taskfarm.store import FarmStore, cas


def test_farm_tables_live_beside_the_service_managers(db_url: str) -> None:  # noqa: F811
    sm = Store(db_url)
    farm = FarmStore(db_url)
    FarmStore(db_url).close()  # a second start finds the schema current
    try:
        names = set(inspect(farm.engine).get_table_names())
        assert {"farm_projects", "farm_units", "farm_instances", "farm_alembic_version", "alembic_version",
                "clusters"} <= names
        sm.create_token("t")  # the service manager's schema is untouched
    finally:
        farm.close()
        sm.close()


def test_compare_and_set_changes_a_row_once(db_url: str) -> None:  # noqa: F811
    farm = FarmStore(db_url)
    try:
        with farm.session() as s:
            s.add(Project(id="p1", tenant="t", code={"kind": "container", "image": "x", "command": ["true"]},
                          comparator={"name": "exact"}))
            s.flush()
            unit = Unit(project_id="p1", seq=0, quorum=1, sha256="0" * 64, size=0, data=b"")
            s.add(unit)
            s.flush()
            s.add(Instance(unit_id=unit.id, project_id="p1", attempt=1))
        with farm.session() as s:
            iid = s.scalar(select(Instance.id))
        with farm.session() as s:
            assert cas(s, Instance, iid, "unsent", state="leased", client_id="c1")
        with farm.session() as s:
            assert not cas(s, Instance, iid, "unsent", state="leased", client_id="c2")
        with farm.session() as s:
            assert s.get(Instance, iid).client_id == "c1"
    finally:
        farm.close()
