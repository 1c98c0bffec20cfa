"""Knowledge-base speed: ingestion chunks/s and query latency, embedded store vs a Chroma server.

The corpus is the built-in KB's material (the 161 species cards, zh + en, ~3,400 chunks) plus the 40
documents of data/retrieval/corpus. Each mode ingests it from scratch into its own KB (embedding
included; the embedding time is also shown apart, since both modes share it), then answers the gold
questions with hybrid retrieval, each query opening the store as `birds kb search` does. Medians of
the latencies; the embedded store opens its client under the write lock every time.

    python bench/kb.py [--queries 60]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class TimedEmbedder:
    """The real embedder, timing its document calls so store time can be told from embedding time."""

    def __init__(self, inner):
        self.inner, self.id, self.seconds = inner, inner.id, 0.0

    def embed_documents(self, texts, **kwargs):
        started = time.perf_counter()
        try:
            return self.inner.embed_documents(texts, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    def embed_query(self, text):
        return self.inner.embed_query(text)


def ingest(address, documents) -> dict:
    from birdsdao.knowledge import service
    from birdsdao.knowledge.loaders import LoadReport

    service.create(address, "bench")
    embedder = TimedEmbedder(service.embedder(None))
    started = time.perf_counter()
    with address.open() as store:
        result = store.get("bench").add_documents(LoadReport(documents=documents), embedder)
    total = time.perf_counter() - started
    return {"chunks": result.chunks_added, "seconds": total, "embedding": embedder.seconds}


def latencies(address, questions: list[str]) -> list[float]:
    from birdsdao.knowledge import service
    from birdsdao.knowledge.retrieval import search

    embedder = service.embedder(None)
    times = []
    for question in [questions[0], *questions]:  # the first one warms the BM25 index; not counted
        started = time.perf_counter()
        with address.open() as store:
            search(store.get("bench"), embedder, question, k=3)
        times.append(time.perf_counter() - started)
    return times[1:]


def start_server(folder: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    chroma = Path(sys.executable).with_name("chroma")
    process = subprocess.Popen([str(chroma), "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("chroma run did not start")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=60)
    args = parser.parse_args()
    from birdsdao.knowledge import service
    from birdsdao.knowledge.builtin import card_documents
    from birdsdao.knowledge.evaluation import CORPUS_DIR, read_gold
    from birdsdao.knowledge.loaders import load_all
    from birdsdao.species_cards import bundled_cards

    documents = card_documents(bundled_cards()) + load_all([CORPUS_DIR]).documents
    questions = [q.question for q in read_gold()][: args.queries]
    service.embedder(None)  # loaded once, outside the timings
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        embedded = service.StoreAddress(work / "kb")
        rows["embedded"] = {**ingest(embedded, documents), "latency": latencies(embedded, questions)}
        server, port = start_server(work / "server")
        try:
            remote = service.StoreAddress(work / "unused", host="127.0.0.1", port=port)
            rows["server"] = {**ingest(remote, documents), "latency": latencies(remote, questions)}
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{os.cpu_count()} CPU cores; {len(documents)} documents; all-MiniLM-L6-v2; hybrid search, k=3; "
          f"{len(questions)} gold questions")
    print(f"{'':9} {'chunks':>6} {'ingest s':>9} {'chunks/s':>9} {'of which embedding s':>21} {'store s':>8} "
          f"{'query p50 ms':>13} {'p95 ms':>7}")
    for mode, row in rows.items():
        store_seconds = row["seconds"] - row["embedding"]
        print(f"{mode:9} {row['chunks']:>6} {row['seconds']:>9.1f} {row['chunks'] / row['seconds']:>9.1f} "
              f"{row['embedding']:>21.1f} {store_seconds:>8.1f} {statistics.median(row['latency']) * 1000:>13.0f} "
              f"{percentile(row['latency'], 0.95) * 1000:>7.0f}")
    ratio = statistics.median(rows["server"]["latency"]) / statistics.median(rows["embedded"]["latency"])
    print(f"server / embedded query latency (p50): {ratio:.2f}×")


if __name__ == "__main__":
    main()
