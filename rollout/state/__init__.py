"""The shared state table and what lives in it: the lock, the pause flag, the journal and history."""
