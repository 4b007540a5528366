"""MIML learners: ``classic``, ``broad`` and ``transfer`` subpackages and shared bases."""
