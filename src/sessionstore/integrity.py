"""The queries that count damage: orphans and drifted counts.

Shared by the health check (on a current database) and the migrations (on a
legacy file, to report what the upgrade will repair); both layouts have
these columns under the same names.
"""

from __future__ import annotations

__all__ = ["DRIFTED_SESSIONS", "ORPHANED_MESSAGES", "ORPHANED_METADATA"]

ORPHANED_MESSAGES = (
    "SELECT COUNT(*) FROM messages m WHERE NOT EXISTS "
    "(SELECT 1 FROM sessions s WHERE s.session_id = m.session_id)"
)
ORPHANED_METADATA = (
    "SELECT COUNT(*) FROM session_metadata d WHERE NOT EXISTS "
    "(SELECT 1 FROM sessions s WHERE s.session_id = d.session_id)"
)
# Sessions whose stored count or totals differ from what their messages add up to.
DRIFTED_SESSIONS = """
    SELECT s.session_id FROM sessions s
    LEFT JOIN (SELECT session_id, COUNT(*) AS n, SUM(COALESCE(tokens_used, 0)) AS tokens,
                      SUM(COALESCE(duration_seconds, 0)) AS duration
               FROM messages GROUP BY session_id) agg ON agg.session_id = s.session_id
    WHERE COALESCE(s.message_count, -1) != COALESCE(agg.n, 0)
       OR COALESCE(s.total_tokens, -1) != COALESCE(agg.tokens, 0)
       OR ABS(COALESCE(s.total_duration_seconds, -1) - COALESCE(agg.duration, 0)) > 1e-6
"""
