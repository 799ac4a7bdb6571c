-- Keeps a labelled session lock's hold after its release, until its
-- lock-at-least-for time (MySQL / MariaDB): its label row becomes the kept
-- hold (kind 'a', carrying the label and the term), which every grant
-- respects, living on the database clock with no client. `{table}` is
-- replaced.
-- Parameters: how long to keep it in microseconds, the name's row key, owner
-- token.
-- Matches one row when there was a label row (else session_keep.sql adds the
-- kept hold).
UPDATE `{table}_holders`
   SET kind = 'a',
       expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
 WHERE name = ?
   AND owner = ?
   AND kind = 'l'
