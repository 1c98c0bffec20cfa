"""Bundled content (installed as `birdsdao.data`): species cards, tuning sets, retrieval gold set. No code."""
