"""The detector at work: load weights, find birds in photos, name them, count them, draw them."""
