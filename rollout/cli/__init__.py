"""The front door: the `rollout` program, the tasks for `fab`, and each task's error handling."""
