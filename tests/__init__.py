"""guardflow tests: unit, flows, data, model and e2e tiers, plus helpers they share."""
