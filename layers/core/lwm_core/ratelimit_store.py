"""The DynamoDB counter behind ``lwm_core.ratelimit`` (bind it to the rate-limits table)."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute

from lwm_core.dynamo import LwmModel


class RateCounter(LwmModel):
    """Hits of one key in one window."""

    class Meta:
        table_name = ""

    pk = UnicodeAttribute(hash_key=True)
    hits = NumberAttribute(default=0)
    expires_at = NumberAttribute()
