"""Reports: the versioned JSON document, its tables, and the environment it records."""
