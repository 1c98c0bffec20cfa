"""Language models for birdsdao: loading (default Gemma 3 270M, or a local folder), prompts, streaming."""
