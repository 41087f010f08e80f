"""The classic map/reduce worker (:mod:`disco.worker.classic.worker`) and its functions."""
