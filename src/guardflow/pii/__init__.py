"""Personal data: detection by column name and values, and the per-column policy."""
