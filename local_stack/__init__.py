"""The local stack: the whole application on this machine, with no Docker and no AWS account.

An embedded AWS stand-in (moto's server, in-process, one request at a time) holds every table, queue, bus
and rule of `template.yaml`; an HTTP gateway routes the template's HttpApi routes to their functions'
handlers with real API Gateway v2 events; pollers deliver SQS event sources and EventBridge rules. Each
function runs in containers of its own, a process each (`local_stack.containers`).
"""
