//! The command line itself: help with examples, completions, man page.

mod common;

use common::ptree;

#[test]
fn every_subcommand_has_help_with_examples() {
    for sub in [
        &[][..],
        &["who-killed"],
        &["doctor"],
        &["check"],
        &["record"],
        &["report"],
        &["audit"],
    ] {
        let mut args: Vec<&str> = sub.to_vec();
        args.push("--help");
        let (code, out, err) = ptree(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains("Example"), "{args:?} has no examples:\n{out}");
    }
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = ptree(&["completions", shell]);
        assert_eq!(code, 0);
        for sub in ["who-killed", "doctor", "check", "record", "report", "audit"] {
            assert!(out.contains(sub), "{shell} completes {sub}");
        }
    }
    let (code, out, _) = ptree(&["man"]);
    assert_eq!(code, 0);
    assert!(out.contains(".TH ptree 1"));
    let (code, _, err) = ptree(&["completions", "tcsh-from-the-future"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn conflicting_selections_are_usage_errors() {
    let (code, _, err) = ptree(&["node", "--pid", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("one of"), "{err}");
    let (code, _, _) = ptree(&["--exact"]);
    assert_eq!(code, 2);
}
