"""Hybrid retrieval: BM25 over jieba tokens and dense search, fused by reciprocal rank.

Each method ranks the chunks; a chunk's fused score is the sum over methods of 1 / (c + rank), the
reciprocal rank fusion of Cormack et al. with c = 60, divided by its largest possible value so that
**scores lie in 0..1 and higher is better**: 1.0 means both methods ranked the chunk first. A
single method is scored the same way (1.0 = its first). Scores rank chunks within one query; they
are not probabilities.

Whether a chunk is *relevant* at all is a separate test: enough of the question's rare words are in
it (idf-weighted coverage), or its embedding is close enough to the question's. With neither, the
answer is "the knowledge base has nothing on this" rather than the least bad chunk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from birdsdao.knowledge.lexical import Bm25, bird_names_in, content_words, intent_words, named_birds, tokenize

Method = Literal["hybrid", "dense", "bm25"]
METHODS: tuple[str, ...] = ("hybrid", "dense", "bm25")
RRF_C = 60
CANDIDATES = 20  # each method's ranking is cut here before fusion
# relevance floors, tuned on data/retrieval_gold.jsonl (see bench/retrieval.py); the similarity floor is
# all-MiniLM-L6-v2's: an embedder whose cosines do not mean relevance at a fixed value (E5) has none
INTENT_WEIGHT = 0.3
MIN_COVERAGE = 0.4
MIN_SIMILARITY = 0.55


def shown_source(source: str) -> str:
    """`source` with the installed package's data folder written `data/` (the repository's name for it): a
    built-in card's path in site-packages says nothing to a reader. Other sources are shown whole."""
    from birdsdao.resources import data_dir

    try:
        return "data/" + Path(source).relative_to(data_dir()).as_posix()
    except ValueError:
        return source


@dataclass
class Hit:
    id: str
    text: str
    source: str
    page: int
    chunk: int
    score: float  # fused, 0..1, higher is better
    similarity: float | None  # cosine similarity of the embeddings (-1..1), when dense search saw it
    coverage: float  # idf-weighted share of the question's words found in the chunk (0..1)
    names_bird: bool  # the question names a known bird and the chunk is about it
    dense_rank: int | None
    bm25_rank: int | None
    metadata: dict
    similarity_floor: float | None = MIN_SIMILARITY  # the embedder's; None: its cosines only rank (E5)
    # the question names birds, and no chunk of the KB names any of them (丹顶鹤, emperor penguin): a chunk
    # about another bird that shares the question's other words does not answer it
    asks_about_absent_birds: bool = False

    @property
    def relevant(self) -> bool:
        if self.asks_about_absent_birds:
            return False
        close = self.similarity_floor is not None and (self.similarity or 0.0) >= self.similarity_floor
        return self.names_bird or self.coverage >= MIN_COVERAGE or close

    @property
    def citation(self) -> str:
        """Where the chunk comes from, as a reader is shown it: file (the bundled cards as `data/species/…`
        rather than wherever the package is installed), page and chunk."""
        page = f" p.{self.page}" if self.page else ""
        return f"{shown_source(self.source)}{page} #{self.chunk}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("metadata")
        data["relevant"] = self.relevant
        data.update({key: self.metadata[key] for key in ("species",) if key in self.metadata})
        return data


class LexicalIndex:
    """BM25 over a KB's stored tokens, kept per process until the KB changes or is made again."""

    _cache: dict[tuple[str, str, str, int, int], LexicalIndex] = {}

    def __init__(self, ids: list[str], texts: list[str], metas: list[dict]):
        self.ids, self.texts, self.metas = ids, texts, metas
        self.position = {chunk_id: i for i, chunk_id in enumerate(ids)}
        self.bm25 = Bm25([meta.get("tokens", "").split() for meta in metas], texts)

    @classmethod
    def of(cls, kb) -> LexicalIndex:
        # a KB made before "uid" existed is told from a namesake by its creation time
        made = str(kb.metadata.get("uid") or kb.metadata.get("created", ""))
        key = (kb.location, kb.info.slug, made, kb.revision, kb.count())
        if key not in cls._cache:
            cls._cache = {k: v for k, v in cls._cache.items() if k[:2] != key[:2]}
            cls._cache[key] = cls(*kb.all_chunks())
        return cls._cache[key]


def search(kb, embedder, query: str, k: int = 3, method: Method = "hybrid", where: dict | None = None) -> list[Hit]:
    """The k best chunks for `query`, best first."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    if method != "bm25":
        kb.check_embedding_model(embedder.id)
    index = LexicalIndex.of(kb)
    if not index.ids:
        return []
    query_tokens = tokenize(query)
    intent_tokens = tokenize(intent_words(query))
    query_words = content_words(query)
    named = bird_names_in(query)
    asked = named_birds(query)
    absent = bool(asked) and all(index.bm25.lacks(bird) for bird in asked)
    # a name the KB has never seen (kakapo) means dense closeness is about some other bird
    trust_dense = not index.bm25.unknown(query_words)
    pool = max(CANDIDATES, k)
    allowed = _filter(index, where)

    bm25_ranked: list[int] = []
    if method in ("hybrid", "bm25"):
        scores = index.bm25.scores(query_tokens)
        if intent_tokens:  # what the question asks about only breaks near-ties between the question's matches
            hints = index.bm25.scores(intent_tokens)
            scores = [score + INTENT_WEIGHT * hint if score > 0 else 0.0
                      for score, hint in zip(scores, hints, strict=True)]
        order = sorted((i for i in allowed if scores[i] > 0), key=lambda i: -scores[i])
        bm25_ranked = order[:pool]

    dense_ranked: list[int] = []
    similarity: dict[int, float] = {}
    vector = embedder.embed_query(query) if method in ("hybrid", "dense") else None
    if vector is not None:  # None: the model cannot read the question (Chinese for MiniLM); BM25 alone decides
        for chunk_id, distance in kb.nearest(vector, min(pool, len(index.ids)), where):
            i = index.position.get(chunk_id)
            if i is not None:  # a chunk written after the index was read waits for the next query
                dense_ranked.append(i)
                similarity[i] = 1.0 - distance  # cosine space: distance = 1 - cosine similarity

    methods_used = max(1, (vector is not None) + (method in ("hybrid", "bm25")))  # the rankings that took part
    fused: dict[int, float] = {}
    for ranking in (dense_ranked, bm25_ranked):
        for rank, i in enumerate(ranking, start=1):
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_C + rank)
    best = methods_used / (RRF_C + 1)
    dense_rank = {i: rank for rank, i in enumerate(dense_ranked, start=1)}
    bm25_rank = {i: rank for rank, i in enumerate(bm25_ranked, start=1)}
    top = sorted(fused, key=lambda i: (-fused[i], i))[:k]
    similarity = similarity if trust_dense else {}
    return [
        Hit(id=index.ids[i], text=index.texts[i], source=index.metas[i]["source"], page=index.metas[i].get("page", 0),
            chunk=index.metas[i].get("chunk", 0), score=round(fused[i] / best, 4), similarity=similarity.get(i),
            coverage=round(index.bm25.coverage(query_words, i), 4),
            names_bird=any(name in index.texts[i] for name in named), dense_rank=dense_rank.get(i),
            bm25_rank=bm25_rank.get(i), metadata=index.metas[i],
            similarity_floor=getattr(embedder, "similarity_floor", MIN_SIMILARITY) if embedder else None,
            asks_about_absent_birds=absent)
        for i in top
    ]


def _filter(index: LexicalIndex, where: dict | None) -> list[int]:
    """Chunk positions that satisfy a plain {key: value} filter (the subset Chroma's `where` and we share)."""
    from birdsdao.knowledge.store import matches

    return [i for i, meta in enumerate(index.metas) if matches(meta, where)]
