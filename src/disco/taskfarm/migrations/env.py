"""Alembic environment of the farm: its own tables, its own version table, on the store's connection."""

from alembic import context

from disco.taskfarm.models import FarmBase

VERSION_TABLE = "farm_alembic_version"

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=FarmBase.metadata, render_as_batch=True,
                  version_table=VERSION_TABLE,
                  # The service manager's tables share the database: never the farm's business.
                  include_name=lambda name, type_, _parent: type_ != "table" or bool(name and name.startswith("farm_")))
with context.begin_transaction():
    context.run_migrations()
