"""Domain package of the serverless marketing engine, shipped to every function as one Lambda layer.

`core` holds what every capability shares (identity, errors, HTTP wiring, DynamoDB access, events);
each capability is a sub-package with its models, service (use cases) and dal (DynamoDB access).
"""
