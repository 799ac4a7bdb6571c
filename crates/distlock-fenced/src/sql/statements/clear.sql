-- Forgets a resource: value and recorded token. Binds: resource.
DELETE FROM {table} WHERE resource = ?
