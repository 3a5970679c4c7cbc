"""Helpers for driving the SMSC simulator from tests."""
