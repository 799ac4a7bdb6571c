-- A resource's counter. Binds: resource.
-- Returns counter; no row when the resource is absent.
SELECT counter FROM {table} WHERE resource = ?
