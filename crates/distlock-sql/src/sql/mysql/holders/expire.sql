-- In a grant transaction: deletes the name's readers, permits and intents
-- whose time has passed (released ones included). ? = key. Returns nothing.
DELETE FROM `{table}_holders`
 WHERE name = ?
   AND expires_at <= UTC_TIMESTAMP(6)
