"""Side effects, one job each: AWS, SSH, balancers, Slack, output. Each takes a whole batch where the API does."""
