"""Inventories and arguments, read once into typed, validated values."""
