"""The data contract: Great Expectations suites, validation with quarantine, drafting, Data Docs."""
