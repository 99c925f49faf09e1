"""Database plumbing: pool, embedded server, migrations, partitions, named queries."""
