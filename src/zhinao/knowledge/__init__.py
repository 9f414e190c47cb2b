"""Knowledge base (知识库): retrieval + generation over a continuously updated library.

Layout (one noun per module):

- ``ingest/``     parsers, one module per format family, registered by extension
                  (PDF text layer, DOCX, PPTX, XLSX/CSV row-aware, HTML stripped of scripts,
                  Markdown, TXT with GBK/GB18030 detection, JSONL Q&A pairs);
- ``chunking``    structure-following chunks (pages, heading paths, table rows, Q&A pairs),
                  cut at Chinese/English sentence ends, token-bounded, with overlap;
- ``index``       Milvus (Lite file by default, a server by URI): dense + BM25 (jieba) + RRF;
- ``retrieve``    the ``Retriever`` protocol (entry points ``zhinao.retrievers``; built-in ``milvus``
                  with modes hybrid / dense / bm25) and the ``Scope`` it must respect;
- ``rerank``      the ``Reranker`` protocol (entry points ``zhinao.rerankers``: none, embedding, overlap);
- ``ingestion``   the resumable ``kb.ingest`` job (content-addressed staging, versioned chunks,
                  atomic switch in SQL, orphan sweep);
- ``rag``         condensation, refusal when nothing is relevant, delimited context, citations;
- ``service``     ``KnowledgeService``: the facade for API, CLI and console; access control;
- ``evaluate``    recall@k, MRR, nDCG@10, citation accuracy; ``demo/`` the sample corpus.

Consistency rule: Milvus may briefly hold chunks of versions that are not active (being
written, or just replaced); the metadata store decides which ``doc_key`` s are visible, so a
replace becomes visible to readers in one SQL commit and never mixes versions.
"""
