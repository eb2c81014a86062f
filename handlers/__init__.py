"""Thin Lambda entry points: parse the event, call ``framework``, shape the response."""
