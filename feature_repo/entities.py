"""Entities. ``user_id`` is always the pseudonym: raw ids never reach a feature store."""

from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="A listener, keyed by the HMAC pseudonym of the application's id.",
)
item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.STRING, description="A track in the catalog.")
