"""CI adoption: what lets a team turn maskcheck on in an existing codebase.

* `baseline`: record today's findings (``--write-baseline``) and report only new ones;
* `suppress`: ``# maskcheck: ignore[...]`` comments and ``per-layer-ignores``;
* `locations`: the source line that built each layer, which both of them key on.

Their old import paths (`maskcheck.baseline`, `maskcheck.suppress`,
`maskcheck.locations`) keep working. Importing this package imports none of them.
"""
