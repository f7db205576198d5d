"""The stateful stack: keys, tables, buckets, queues, secrets, network, database, event bus."""
