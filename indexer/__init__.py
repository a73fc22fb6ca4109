"""Indexing: scan an echo archive, decode its videos in worker processes, embed each study with the
model bundle and upsert it with its phenotypes (`indexer.pipeline.index_archive`)."""
