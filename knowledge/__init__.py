"""Knowledge bases: document loaders, Chinese-aware splitting, (later) stores and retrieval."""
