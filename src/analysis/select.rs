//! Which processes a view shows: the matches, their ancestors up to PID 1
//! (so the supervisor above a wrapper is visible) and their subtrees.

use std::collections::HashSet;

use crate::analysis::title::{TitleMatch, matches_title};
use crate::error::Error;
use crate::model::{Pid, Snapshot};

/// What the user asked to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The whole machine, like `ps axjf`.
    All,
    /// Command lines containing this text, like `pgrep -f`.
    Pattern(String),
    /// These processes.
    Pids(Vec<Pid>),
    /// An Egg deployment by title.
    Title { title: String, how: TitleMatch },
}

impl Selection {
    /// The selection from command-line parts: at most one of a pattern,
    /// pids or a title; none means the whole machine.
    pub fn from_parts(
        pattern: Option<&str>,
        pids: &[i32],
        title: Option<&str>,
        exact: bool,
    ) -> Result<Selection, Error> {
        let given = [pattern.is_some(), !pids.is_empty(), title.is_some()]
            .iter()
            .filter(|&&b| b)
            .count();
        if given > 1 {
            return Err(Error::Usage("give one of PATTERN, --pid or --title".into()));
        }
        if let Some(t) = title {
            let how = if exact {
                TitleMatch::Exact
            } else {
                TitleMatch::Prefix
            };
            return Ok(Selection::Title {
                title: t.to_string(),
                how,
            });
        }
        if !pids.is_empty() {
            if let Some(bad) = pids.iter().find(|&&p| p <= 0) {
                return Err(Error::Usage(format!(
                    "--pid {bad}: a pid is a positive number"
                )));
            }
            return Ok(Selection::Pids(pids.iter().map(|&p| Pid(p)).collect()));
        }
        Ok(pattern.map_or(Selection::All, |p| Selection::Pattern(p.to_string())))
    }
}

/// The processes the selection matches, before ancestors and subtrees are
/// added. An unknown pid is an error; a pattern that matches nothing is an
/// empty list.
pub fn matches(snapshot: &Snapshot, selection: &Selection) -> Result<Vec<Pid>, Error> {
    let me = snapshot.reader_pid;
    Ok(match selection {
        Selection::All => snapshot.processes.iter().map(|p| p.pid).collect(),
        Selection::Pattern(text) => snapshot
            .processes
            .iter()
            .filter(|p| p.pid != me && !p.is_kernel_thread())
            .filter(|p| p.argv.joined_contains(text.as_bytes()))
            .map(|p| p.pid)
            .collect(),
        Selection::Pids(pids) => {
            for &pid in pids {
                if snapshot.get(pid).is_none() {
                    return Err(Error::NoSuchPid(pid));
                }
            }
            pids.clone()
        }
        Selection::Title { title, how } => snapshot
            .processes
            .iter()
            .filter(|p| p.pid != me && matches_title(&p.argv, title, *how))
            .map(|p| p.pid)
            .collect(),
    })
}

/// The matches with their ancestors and descendants.
pub fn expand(snapshot: &Snapshot, matched: &[Pid]) -> HashSet<Pid> {
    let children = snapshot.children_map();
    let mut shown: HashSet<Pid> = HashSet::new();
    for &pid in matched {
        if !shown.insert(pid) {
            continue;
        }
        for a in snapshot.ancestors(pid) {
            shown.insert(a.pid);
        }
        let mut stack: Vec<Pid> = children.get(&pid).cloned().unwrap_or_default();
        while let Some(c) = stack.pop() {
            if shown.insert(c) {
                stack.extend(children.get(&c).into_iter().flatten());
            }
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixture::egg_snapshot;

    #[test]
    fn title_selects_master_and_workers_and_shows_the_chain() {
        let snap = egg_snapshot();
        let sel = Selection::Title {
            title: "egg-server".into(),
            how: TitleMatch::Prefix,
        };
        let mut m = matches(&snap, &sel).unwrap();
        m.sort();
        // The launcher carries `--title=` too: it belongs to the deployment.
        assert_eq!(
            m,
            vec![Pid(20517), Pid(20537), Pid(20553), Pid(20567), Pid(20568)]
        );
        let shown = expand(&snap, &m);
        assert!(shown.contains(&Pid(20490)), "supervisor shown");
        assert_eq!(shown.len(), 7);
    }

    #[test]
    fn exact_title() {
        let snap = egg_snapshot();
        let sel = Selection::Title {
            title: "egg-server".into(),
            how: TitleMatch::Exact,
        };
        assert!(matches(&snap, &sel).unwrap().is_empty());
    }

    #[test]
    fn unknown_pid_is_an_error() {
        let snap = egg_snapshot();
        let e = matches(&snap, &Selection::Pids(vec![Pid(999_999)])).unwrap_err();
        assert!(e.to_string().contains("999999"));
    }

    #[test]
    fn pattern_is_like_pgrep_f() {
        let snap = egg_snapshot();
        let m = matches(&snap, &Selection::Pattern("src/index.js".into())).unwrap();
        assert_eq!(m, vec![Pid(20501)]);
    }
}
