"""Print the behaviour tables as Markdown (paste between the markers in docs/core.md)."""

from failover_core.tables import render_markdown

print(render_markdown())
