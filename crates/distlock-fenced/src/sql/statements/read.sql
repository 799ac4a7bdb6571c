-- A resource's row. Binds: resource.
-- Returns value, counter, fence; no row when the resource is absent.
SELECT value, counter, fence FROM {table} WHERE resource = ?
