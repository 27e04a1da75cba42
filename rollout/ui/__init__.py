"""The deployer's page (`fab ui`): a Flask app that reads the state table and sends signed queue requests.

It holds no SSH key and reaches no host: host facts come from the status the worker publishes,
and every action is a request the worker carries out.
"""
