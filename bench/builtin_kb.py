"""Building the built-in KB (鸟类百科) on a fresh install: with the shipped vectors vs embedding every chunk.

Each round builds it into a new, empty store twice, once taking the vectors shipped in
data/builtin_kb_vectors.npz and once embedding all chunks with the default model (as before they were
shipped, or after a card changed without the file being made again), interleaved; medians and the ratio.
The model is loaded once beforehand in both cases (its load is part of neither).

    python bench/builtin_kb.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from bench.timing import interleaved, spread
    from birdsdao.knowledge import builtin
    from birdsdao.knowledge.service import StoreAddress, embedder

    model = embedder(None)
    chunks = len(builtin.card_chunk_texts())
    shipped = builtin.stored_vectors

    def build(use_shipped: bool):
        def call(_round: int) -> None:
            builtin.stored_vectors = shipped if use_shipped else (lambda _model: {})
            try:
                with tempfile.TemporaryDirectory(prefix="birds-bench-kb-") as home:
                    builtin.ensure_builtin(StoreAddress(Path(home) / "kb"))
            finally:
                builtin.stored_vectors = shipped
        return call

    times = interleaved({"shipped vectors": build(True), "embed every chunk": build(False)}, args.rounds, warmup=0)
    print(f"built-in KB: {chunks} chunks, model {model.name}; {args.rounds} rounds, interleaved")
    for label, values in times.items():
        s = spread(values)
        print(f"  {label:18s} median {s.median:7.1f} s  (IQR {s.iqr:.1f} s)  {chunks / s.median:7.0f} chunks/s")
    ratio = spread(times["embed every chunk"]).median / spread(times["shipped vectors"]).median
    print(f"  shipped vectors are {ratio:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
