"""ChatGLM2-6B written for today's transformers: model, tokenizer, checkpoint and prefix files.

The original ships as remote code that only runs on transformers < 4.42. This package implements the
same architecture from its description (no remote code), loads the original folders and `checkpoint-N`
prefixes as they are, and plugs into `generate` through transformers' `Cache`. Importing the package
itself stays cheap; torch comes with the submodules.
"""
