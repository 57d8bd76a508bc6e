"""Operations for migrations that need PostgreSQL's own features, with what other databases do
instead. Index changes on a busy table run CONCURRENTLY on PostgreSQL (a plain CREATE INDEX holds
off every write to the table, every chat turn, while it reads the whole table) and plain
elsewhere; a migration using them sets `atomic = False`. (The leading underscore keeps Django's
migration loader from taking this module for a migration.)"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations


class _PlainOutsidePostgreSQL:
    """The CONCURRENTLY operation on PostgreSQL; on other databases, `plain`, its ordinary twin."""

    plain: type[migrations.AddIndex] | type[migrations.RemoveIndex]

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        return self.plain.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        return self.plain.database_backwards(self, app_label, schema_editor, from_state, to_state)


class AddIndexConcurrentlyOnPostgreSQL(_PlainOutsidePostgreSQL, AddIndexConcurrently):
    plain = migrations.AddIndex


class RemoveIndexConcurrentlyOnPostgreSQL(_PlainOutsidePostgreSQL, RemoveIndexConcurrently):
    plain = migrations.RemoveIndex


class RunSQLOnPostgreSQL(migrations.RunSQL):
    """SQL that only PostgreSQL runs (a PL/pgSQL function); nothing on other databases, whose
    code paths don't use it."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
