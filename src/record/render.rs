//! `report --format markdown`: a postmortem timeline that pastes into an
//! incident document — headings, a table of deaths, the tree in a code
//! block. Only formats a [`Report`]; `--format json` is the same report
//! through serde.

use std::fmt::Write;

use crate::record::timeline::{Death, Report, death_how, kind_name};

/// Shortens long command lines (a JSON argument can be kilobytes).
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A table cell: pipes escaped, no line breaks, inline code kept whole.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// `2026-12-01T19:26:58.237067Z` → `2026-12-01 19:26:58.237`.
fn short_time(rfc3339: &str) -> String {
    let t = rfc3339.replacen('T', " ", 1);
    let t = t.trim_end_matches('Z');
    match t.find('.') {
        Some(dot) => t[..(dot + 4).min(t.len())].to_string(),
        None => t.to_string(),
    }
}

fn death_row(d: &Death, out: &mut String) {
    let (verdict, root, chain) = match &d.verdict {
        Some(v) => (
            kind_name(v.kind),
            v.root_cause
                .as_ref()
                .map(|r| format!("{} {} ({})", r.pid, clip(&r.cmdline, 60), r.role))
                .unwrap_or_else(|| "—".to_string()),
            v.chain
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" → "),
        ),
        None => ("—".to_string(), "—".to_string(), "—".to_string()),
    };
    let _ = writeln!(
        out,
        "| {} | {} | `{}` | {} | {} | **{}** | {} | {} |",
        short_time(&d.time),
        d.pid,
        cell(&clip(&d.cmdline, 70)).replace('`', "'"),
        d.role,
        death_how(d),
        verdict,
        cell(&root),
        chain
    );
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let rec = &r.recording;
    let host = if rec.hostname.is_empty() {
        String::new()
    } else {
        format!(" on {}", rec.hostname)
    };
    let _ = writeln!(out, "# Postmortem timeline: `{}`{host}\n", rec.selection);
    if let (Some(from), Some(to)) = (&rec.from, &rec.to) {
        let _ = writeln!(
            out,
            "Recorded by `ptree record` from {} to {} (UTC).\n",
            short_time(from),
            short_time(to)
        );
    }

    // Anything that makes the record incomplete comes first.
    let mut warnings = Vec::new();
    if rec.lost_total > 0 {
        warnings.push(format!(
            "the kernel dropped {} trace events ({} time{}): the timeline has holes",
            rec.lost_total,
            rec.lost.len(),
            if rec.lost.len() == 1 { "" } else { "s" }
        ));
    }
    for f in &rec.files {
        if f.truncated {
            warnings.push(format!(
                "`{}` ends with a cut line: its recorder was killed",
                f.path
            ));
        }
        if f.garbage > 0 {
            warnings.push(format!(
                "`{}` has {} unreadable line{}",
                f.path,
                f.garbage,
                if f.garbage == 1 { "" } else { "s" }
            ));
        }
    }
    for run in &rec.runs {
        if let Some(gap) = run.gap_seconds.filter(|g| *g > 1.0) {
            warnings.push(format!(
                "nothing was recorded for {gap:.1} s before the recorder restarted at {}",
                short_time(&run.started_at)
            ));
        }
    }
    for w in &warnings {
        let _ = writeln!(out, "> **Warning:** {w}");
    }
    if !warnings.is_empty() {
        out.push('\n');
    }

    let _ = writeln!(out, "## Recording\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| host | {} |", cell(&rec.hostname));
    let _ = writeln!(out, "| selection | `{}` |", rec.selection);
    let files: Vec<String> = rec
        .files
        .iter()
        .map(|f| {
            format!(
                "`{}` ({} lines{})",
                f.path,
                f.lines,
                if f.closed { "" } else { ", not closed" }
            )
        })
        .collect();
    let _ = writeln!(out, "| files | {} |", cell(&files.join(", ")));
    let _ = writeln!(out, "| recorder runs | {} |", rec.runs.len());
    let _ = writeln!(out, "| lost events | {} |", rec.lost_total);
    let _ = writeln!(out, "| signals recorded | {} |", rec.signals.join(" "));
    out.push('\n');

    if let Some(tree) = &r.tree {
        let _ = writeln!(
            out,
            "## Process tree at {}\n\n```text",
            short_time(&tree.time)
        );
        let _ = writeln!(
            out,
            "{:>7} {:>7} {:<10} {:<22} COMMAND",
            "PPID", "PID", "ROLE", "STDOUT"
        );
        for p in &tree.processes {
            let _ = writeln!(
                out,
                "{:>7} {:>7} {:<10} {:<22} {}{}",
                p.ppid.0,
                p.pid.0,
                p.role.as_str(),
                clip(&p.stdout, 22),
                p.prefix,
                clip(&p.cmdline, 100)
            );
        }
        out.push_str("```\n\n");
    }

    let _ = writeln!(out, "## Deaths ({})\n", r.deaths.len());
    if r.deaths.is_empty() {
        out.push_str("No recorded process died.\n");
    } else {
        out.push_str(
            "| time (UTC) | pid | command | role | how | verdict | root cause | chain |\n\
             |---|---:|---|---|---|---|---|---|\n",
        );
        for d in &r.deaths {
            death_row(d, &mut out);
        }
        out.push('\n');
        let explained: Vec<&Death> = r
            .deaths
            .iter()
            .filter(|d| d.verdict.is_some())
            .take(50)
            .collect();
        if !explained.is_empty() {
            out.push_str("### Why\n\n");
            for d in explained {
                if let Some(v) = &d.verdict {
                    let _ = writeln!(
                        out,
                        "- **{} {}** ({}): {}",
                        d.pid,
                        d.comm,
                        kind_name(v.kind),
                        v.explanation
                    );
                }
            }
        }
    }
    if !r.quiet_exits.is_empty() {
        let total: usize = r.quiet_exits.iter().map(|q| q.count).sum();
        let names: Vec<String> = r
            .quiet_exits
            .iter()
            .take(8)
            .map(|q| format!("`{}` ×{}", q.comm, q.count))
            .collect();
        let _ = writeln!(
            out,
            "\n{total} short-lived process{} exited without a signal: {}.",
            if total == 1 { "" } else { "es" },
            names.join(", ")
        );
    }
    out.push('\n');

    let _ = writeln!(out, "## Restarts ({})\n", r.restarts.len());
    for l in &r.restart_loops {
        let _ = writeln!(
            out,
            "> **Restart loop:** {} {} ({}) replaced {} {}s within {:.0} s (rule {}), \
             {} restarts from {} to {}: a refork storm — the replacements die as they start; \
             read the first death's verdict and exit status.\n",
            l.parent.pid,
            l.parent.comm,
            l.parent.role,
            l.restarts_in_window,
            l.role,
            l.window_seconds,
            l.rule,
            l.total_restarts,
            short_time(&l.first),
            short_time(&l.last)
        );
    }
    if r.restarts.is_empty() {
        out.push_str("No process was replaced.\n\n");
    } else {
        out.push_str(
            "| time (UTC) | role | under | old pid | new pid | after |\n\
             |---|---|---|---:|---:|---:|\n",
        );
        for x in r.restarts.iter().take(200) {
            let _ = writeln!(
                out,
                "| {} | {} | {} {} ({}) | {} | {} | {:+.3} s |",
                short_time(&x.time),
                x.role,
                x.parent.pid,
                cell(&x.parent.comm),
                x.parent.role,
                x.old_pid,
                x.new_pid,
                x.after_seconds
            );
        }
        if r.restarts.len() > 200 {
            let _ = writeln!(out, "\n… and {} more.", r.restarts.len() - 200);
        }
        out.push('\n');
    }

    let _ = writeln!(
        out,
        "## Signals from supervisors ({})\n",
        r.supervisor_signals.len()
    );
    if r.supervisor_signals.is_empty() {
        out.push_str("None.\n\n");
    } else {
        out.push_str("| time (UTC) | signal | from | to | result |\n|---|---|---|---|---|\n");
        for s in &r.supervisor_signals {
            let from = s
                .sender
                .as_ref()
                .map(|x| format!("{} {}", x.pid, clip(&x.cmdline, 50)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} {} ({}) | {} |",
                short_time(&s.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                s.signal,
                cell(&from),
                s.target.pid,
                cell(&s.target.comm),
                s.target.role,
                crate::record::format::delivery_name(s.result)
            );
        }
        out.push('\n');
    }

    let _ = writeln!(out, "## Timeline\n");
    if r.timeline.is_empty() {
        out.push_str("Nothing happened.\n");
    } else {
        out.push_str("| time (UTC) | event | what |\n|---|---|---|\n");
        for e in &r.timeline {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                short_time(&e.time),
                e.kind,
                cell(&e.text)
            );
        }
        if r.timeline_omitted > 0 {
            let _ = writeln!(
                out,
                "\n… {} later entries left out (`--format json` has the same cut; narrow with `--pid`).",
                r.timeline_omitted
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_times() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(
            short_time("2026-12-01T19:26:58.237067Z"),
            "2026-12-01 19:26:58.237"
        );
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
