"""DynamoDB access of the rate limits. Keys (see docs/data-model.md):

    a user's use of a route in a window   pk T#{t}#U#{user}#RATE   sk {route}#{window}   used, ttl

One atomic, conditional counter per user, route and window: DynamoDB decides who gets the last unit, whatever
the number of Lambda environments answering at once.
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from marketing.core import dynamo


def usage_key(t: str, user: str, route: str, window: int) -> dict:
    return {"pk": f"T#{t}#U#{user}#RATE", "sk": f"{route}#{window}"}


def take(t: str, user: str, route: str, window: int, *, cost: int, limit: int, expires: int) -> bool:
    """Add `cost` to the window's counter if it stays within `limit`; False (and nothing written) if not."""
    try:
        dynamo.table().update_item(
            Key=usage_key(t, user, route, window),
            UpdateExpression="ADD used :cost SET #ttl = :ttl",
            ConditionExpression="attribute_not_exists(used) OR used <= :room",
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={":cost": cost, ":room": limit - cost, ":ttl": expires},
        )
        return True
    except ClientError as exc:
        if dynamo.is_condition_failure(exc):
            return False
        raise
