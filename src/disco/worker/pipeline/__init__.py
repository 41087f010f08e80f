"""The pipeline worker (:mod:`disco.worker.pipeline.worker`)."""
