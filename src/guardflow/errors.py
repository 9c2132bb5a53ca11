"""Domain errors: one type per kind of failure a user can act on.

The CLI catches `GuardflowError` once and prints its message as one line (exit 2). Anything else is an
internal failure (exit 1).
"""

# The `guardflow` command's exit codes, one per kind of outcome.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_REJECTED = 3


class GuardflowError(Exception):
    """A failure caused by the input or the configuration, not by guardflow itself."""


class ConfigError(GuardflowError):
    """The configuration file is missing, unreadable or does not match the schema."""


class DataError(GuardflowError):
    """A data file is missing, unreadable, empty or fails its checksum."""


class ContractError(GuardflowError):
    """The batch breaks its data contract at batch level (schema, emptiness, quarantined share, label set)."""


class PiiError(GuardflowError):
    """The data holds personal data that no policy covers, or a column the PII policy blocks."""


class PoisoningError(GuardflowError):
    """The poisoning scan flagged more rows than the policy allows."""


class BudgetError(GuardflowError):
    """Training would take a dataset past its lifetime privacy budget."""


class RegistryError(GuardflowError):
    """The model registry has no model or version that the command names."""
