"""Bundled default weights (installed as `birdsdao.weights`) with MANIFEST.json; the scripts beside them remake them."""
