"""The maskcheck version, in a module of its own.

A plain module with no imports, so the value layer (`maskcheck.finding`), the
baseline file and the reporters can name the version without importing the
`maskcheck` package itself (whose `__init__` imports them: that would be a cycle).
`maskcheck.__version__` re-exports it; pyproject.toml states the same number.
"""

__version__ = "0.1.0"
