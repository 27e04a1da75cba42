"""App strategies: what `update` means for a git checkout + reload, or a container image + restart."""
