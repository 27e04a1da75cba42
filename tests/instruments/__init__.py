"""Test instruments: a load generator and a throttling AWS proxy, used by the tests only."""
