"""guardflow: a batch MLOps pipeline that will not ship an unsafe model.

The library holds the logic of every stage and never imports Prefect; `tasks/` and `flows/` wrap it.
"""

__version__ = "0.1.0"
