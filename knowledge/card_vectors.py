"""The built-in KB's vectors, computed once and shipped, so that a fresh install builds it in seconds.

Embedding the 3,421 chunks of the species cards with multilingual-e5-small takes about 2.5 minutes on two
CPU cores, and every new install (every test's BIRDS_HOME too) would pay it on its first `birds ask`. The
vectors only depend on the chunk texts and the model's weights, and the engine gives the same vector for a
text whatever batch it is in, so they are stored here, keyed by each chunk's text, with the fingerprint of
the model that made them. A chunk whose text is not stored (an edited card) is embedded as usual; another
model's vectors are never used.

Made again after the cards or the default model change (tests/test_card_vectors.py fails until then):

    python -m birdsdao.knowledge.card_vectors
"""

from __future__ import annotations

import sys
from pathlib import Path

from birdsdao.files import written_atomically
from birdsdao.knowledge.embeddings import text_key
from birdsdao.resources import data_dir

VECTORS_FILE = data_dir() / "builtin_kb_vectors.npz"


def stored_vectors(embedder, path: Path = VECTORS_FILE) -> dict[str, list[float]]:
    """{text key: vector} made by `embedder`'s very weights; empty when the file is missing or another model's."""
    import numpy as np

    if not Path(path).is_file():
        return {}
    with np.load(path, allow_pickle=False) as stored:
        if (str(stored["model"]), str(stored["fingerprint"])) != (embedder.id.name, embedder.id.fingerprint):
            return {}
        return dict(zip(stored["keys"].tolist(), stored["vectors"].tolist(), strict=True))


def write_vectors(embedder, texts: list[str], path: Path = VECTORS_FILE, progress=None) -> int:
    """Embed `texts` and store them at `path` (written whole, then renamed); returns how many."""
    import numpy as np

    vectors = np.asarray(embedder.embed_documents(texts, progress=progress), dtype=np.float32)
    with written_atomically(path, mode=0o644) as temporary:  # readable by all: the file ships with the package
        np.savez_compressed(temporary, keys=np.array([text_key(text) for text in texts]), vectors=vectors,
                            model=np.array(embedder.id.name), fingerprint=np.array(embedder.id.fingerprint))
    return len(texts)


def _main() -> int:
    from birdsdao.knowledge.builtin import card_chunk_texts
    from birdsdao.knowledge.service import embedder

    model = embedder(None)
    texts = card_chunk_texts()
    print(f"embedding {len(texts)} card chunks with {model.name} …", file=sys.stderr)
    written = write_vectors(model, texts, progress=lambda done, total: print(f"\r{done}/{total}", end="",
                                                                              file=sys.stderr))
    print(f"\n{written} vectors written to {VECTORS_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
