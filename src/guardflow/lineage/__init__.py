"""OpenLineage facets and the lineage graph with its text and HTML views."""
