"""The run summary for people: a line per section that ran, printed at the end of every command."""

from __future__ import annotations

from guardflow.run.summary import RunSummary

# A family (the name before its brackets) with more PASS or WAIVED lines than this prints them as one line.
_FAMILY_LINES = 3


def format_summary(summary: RunSummary) -> str:
    """A short human summary of a run, a line per section that ran."""
    lines = [f"{summary.flow}: {summary.status.upper()} in {summary.seconds:.1f}s  ({summary.run_dir})"]
    if summary.error:
        lines.append(f"  error      {summary.error}")
    if summary.data:
        data = summary.data
        by_stage = f"contract {data.quarantined_by_contract:,}"
        if summary.poisoning:
            by_stage += f", scan {data.quarantined_by_scan:,}"
        lines.append(
            f"  data       {data.rows_in:,} rows in, {data.rows_accepted:,} accepted, "
            f"{data.rows_quarantined:,} quarantined ({by_stage})"
        )
    if summary.contract:
        contract = summary.contract
        report = f"; report {contract.report_path}" if contract.report_path else ""
        lines.append(
            f"  contract   {contract.suite}: {contract.expectations} expectations, "
            f"{contract.expectations_failed} failed{report}"
        )
    if summary.poisoning:
        poisoning = summary.poisoning
        detectors = ", ".join(f"{name} {count:,}" for name, count in poisoning.per_detector.items())
        lines.append(
            f"  scan       {poisoning.rows_flagged:,} of {poisoning.rows_scanned:,} rows flagged ({detectors}) "
            f"in {poisoning.seconds:.1f}s"
        )
        for detector, why in poisoning.skipped.items():
            lines.append(f"             {detector} skipped: {why}")
    if summary.privacy:
        privacy = summary.privacy
        lines.append(
            f"  privacy    epsilon {privacy.epsilon:.3f} at delta {privacy.delta:g} ({privacy.accountant}; "
            f"rdp {privacy.epsilon_rdp:.3f}), noise {privacy.noise_multiplier:.2f}, {privacy.steps} steps; "
            f"budget {privacy.budget_spent:.2f} of {privacy.lifetime_epsilon:.2f} spent"
        )
    if summary.metrics:
        metrics = summary.metrics
        parity = ", ".join(
            f"{name} {group.demographic_parity_difference:.3f}" for name, group in metrics.fairness.items()
        )
        lines.append(
            f"  metrics    accuracy {metrics.accuracy:.4f}, roc_auc {metrics.roc_auc:.4f}, ece {metrics.ece:.4f}, "
            f"mia_auc {metrics.mia_auc:.4f}; parity gap {parity}"
        )
    if summary.gate:
        verdict = "passed" if summary.gate.passed else "failed"
        against = (
            f"champion version {summary.gate.compared_to}" if summary.gate.compared_to else "no champion yet"
        )
        lines.append(f"  gate       {verdict} (compared with {against})")
        lines += [f"             {line}" for line in gate_lines(summary.gate.lines)]
    if summary.window:
        window = summary.window
        champion = f"{window.champion['accuracy']:.4f}" if window.champion else "none yet"
        lines.append(
            f"  window     {window.judged_on}: accuracy candidate {window.candidate['accuracy']:.4f}, "
            f"champion {champion}"
        )
    if summary.model:
        aliases = ", ".join(summary.model.aliases) or "no alias"
        lines.append(f"  model      {summary.model.name} version {summary.model.version} ({aliases})")
    if summary.drift:
        drift = summary.drift
        columns = ", ".join(drift.drifted_columns) or "none"
        lines.append(
            f"  drift      {drift.drifted_share:.0%} of columns drifted ({columns}); report {drift.report_path}"
        )
        if drift.screened:
            slices = "; ".join(drift.shifted_slices[:3]) or "no slice moved"
            lines.append(f"  screen     {drift.suspects:,} batch rows quarantined as suspects ({slices})")
            for reason in drift.approval_reasons:
                lines.append(f"  waits      {reason}")
        if drift.retrain_run_dir:
            lines.append(f"  retrain    {drift.retrain_status} ({drift.retrain_run_dir})")
    for reason in summary.approval_reasons or []:
        lines.append(f"  approval   waits as challenger: {reason}")
    if summary.rerun and summary.rerun.matched_version:
        rerun = summary.rerun
        how = "trained again (--force)" if rerun.forced else "nothing trained; --force trains again"
        lines.append(f"  rerun      same data, config and code as version {rerun.matched_version}: {how}")
    if summary.lineage:
        lines.append(f"  lineage    {summary.lineage.events} events -> {summary.lineage.path}")
    return "\n".join(lines)


def gate_lines(lines: list[str]) -> list[str]:
    """The gate's lines for the console: every FAIL in full; a family's PASS lines in full up to `_FAMILY_LINES`,
    else one line counting them; WAIVED lines the same, per family and reason. Every line stays in summary.json,
    the MLflow tags and the model card."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    order: list[tuple[str, str, str] | str] = []
    for line in lines:
        verdict, name, rest = _split_line(line)
        if verdict not in ("PASS", "WAIVED"):
            order.append(line)
            continue
        key = (verdict, name.split("[", 1)[0], rest if verdict == "WAIVED" else "")
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(line)
    shown: list[str] = []
    for entry in order:
        if isinstance(entry, str):
            shown.append(entry)
            continue
        members = groups[entry]
        verdict, family, reason = entry
        if len(members) <= _FAMILY_LINES:
            shown += members
        else:
            shown.append(f"{verdict} {len(members)} {family} lines" + (f" {reason}" if reason else ""))
    return shown


def _split_line(line: str) -> tuple[str, str, str]:
    """(verdict, name, the rest) of `PASS no_regression[sex=Female, tpr] 0.01 (...)`: a name's brackets may hold
    spaces."""
    verdict, _, remainder = line.partition(" ")
    depth = 0
    for position, character in enumerate(remainder):
        depth += {"[": 1, "]": -1}.get(character, 0)
        if character == " " and depth == 0:
            return verdict, remainder[:position], remainder[position + 1 :]
    return verdict, remainder, ""
