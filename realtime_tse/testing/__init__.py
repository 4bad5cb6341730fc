"""Test and benchmark harnesses, not part of the product's live path."""
