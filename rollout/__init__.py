"""rollout: rolling, in-place deploys over SSH through a bastion."""

__version__ = "0.1.0"
