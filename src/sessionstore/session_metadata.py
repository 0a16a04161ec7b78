"""Session metadata: the string key/value pairs a session carries.

One part of :class:`~sessionstore.sessions.SessionRepository` (``store.sessions``),
kept apart by concept: the session rows themselves are in
:mod:`sessionstore.sessions`; their ``session_metadata`` rows (one per key,
deleted with the session) are read and written here. Writes need the session
to be writable (not archived); reads of a session outside a scoped view's
owner are :class:`~sessionstore.errors.SessionNotFound`, as for an id that
never existed.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, select

from .models import SessionMetadata
from .owners import Owner, require_owned
from .session_sql import D, dialect_insert, require_session, require_writable
from .transactions import Runner
from .validation import check_id, check_metadata_pairs

__all__ = ["MetadataMethods"]

_METADATA = select(D.key, D.value).where(D.session_id == bindparam("session_id")).order_by(D.key)
_METADATA_ONE = select(D.value).where(
    D.session_id == bindparam("session_id"), D.key == bindparam("key")
)
_DELETE_METADATA = delete(SessionMetadata).where(
    D.session_id == bindparam("session_id"), D.key == bindparam("key")
)


class MetadataMethods:
    """``store.sessions``' ``set_metadata``, ``delete_metadata``, ``get_metadata``, ``metadata``."""

    _runner: Runner
    _owner: Owner | None

    def set_metadata(self, session_id: str, key: str, value: str | None) -> None:
        session_id = check_id("session_id", session_id)
        # The key is checked before it becomes a dict key: ``{}`` is not hashable.
        pairs = check_metadata_pairs({check_id("metadata key", key): value})

        def work(conn: Connection) -> None:
            require_writable(conn, session_id, self._owner)
            stmt = dialect_insert(conn.dialect.name, SessionMetadata).values(
                [{"session_id": session_id, "key": k, "value": v} for k, v in pairs.items()]
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[D.session_id, D.key], set_={"value": stmt.excluded.value}
                )
            )

        self._runner.write(work)

    def delete_metadata(self, session_id: str, key: str) -> bool:
        session_id = check_id("session_id", session_id)
        key = check_id("metadata key", key)

        def work(conn: Connection) -> bool:
            require_writable(conn, session_id, self._owner)
            result = conn.execute(_DELETE_METADATA, {"session_id": session_id, "key": key})
            return bool(result.rowcount)

        return self._runner.write(work)

    def get_metadata(self, session_id: str, key: str, default: str | None = None) -> str | None:
        session_id = check_id("session_id", session_id)
        key = check_id("metadata key", key)

        def work(conn: Connection) -> str | None:
            require_owned(conn, session_id, self._owner)
            row = conn.execute(_METADATA_ONE, {"session_id": session_id, "key": key}).first()
            if row is None:
                require_session(conn, session_id)
                return default
            return row[0]  # type: ignore[no-any-return]

        return self._runner.read(work)

    def metadata(self, session_id: str) -> dict[str, str | None]:
        session_id = check_id("session_id", session_id)

        def work(conn: Connection) -> dict[str, str | None]:
            require_owned(conn, session_id, self._owner)
            rows = conn.execute(_METADATA, {"session_id": session_id}).all()
            if not rows:
                require_session(conn, session_id)
            return dict(rows)

        return self._runner.read(work)
