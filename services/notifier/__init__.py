"""Telling subscribers: grouping, Standard Webhooks delivery, email, and the delivery log."""
