"""CI adoption: what lets a team turn maskcheck on in an existing codebase.

* `baseline`: record today's findings (``--write-baseline``) and report only new ones;
* `suppress`: ``# maskcheck: ignore[...]`` comments and ``per-layer-ignores``;
* `locations`: the source line that built each layer, which both of them key on.

Importing this package imports none of them. They used to sit at the top level
(`maskcheck.baseline`, ...); those paths were internal, and are gone.
"""
