"""The logger every task reports through: printed on the console by the CLI and, as one of Prefect's
extra loggers, shipped to the Prefect API so the same lines show in the flow run's logs."""

import logging

stage_log = logging.getLogger("guardflow.stages")
