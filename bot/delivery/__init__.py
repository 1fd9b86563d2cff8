"""Delivery: the outbox (the only way anything is sent) and the dispatcher that drains it."""
