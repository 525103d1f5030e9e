//! Assembles what a tree view shows: reads the kernel once, runs the
//! analysis, and resolves names, so renderers only format.

use std::collections::{HashMap, HashSet};

use crate::analysis::compact::compact;
use crate::analysis::roles::{Roles, classify};
use crate::analysis::select::{Selection, expand, matches};
use crate::analysis::tree::{TreeNode, build};
use crate::error::Error;
use crate::model::{Peers, Pid, Snapshot};
use crate::proc::tty::TtyNames;
use crate::proc::users::UserNames;
use crate::proc::{self, Details, peers};

/// How much to read for a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Only what `ps axjf` shows: no fds, no roles, no peers.
    Ps,
    /// Roles, plus the details asked for and the peers of stdout/stderr.
    Full(Details),
}

/// Everything a renderer needs.
#[derive(Debug, Clone)]
pub struct View {
    pub snapshot: Snapshot,
    pub roles: Roles,
    pub peers: Peers,
    pub forest: Vec<TreeNode>,
    /// The processes the selection matched (before adding context).
    pub matched: Vec<Pid>,
    pub tty_names: HashMap<u32, String>,
    pub user_names: HashMap<u32, String>,
}

impl View {
    /// Reads the machine and builds the view of `selection`.
    pub fn read(selection: &Selection, depth: Depth, fold: bool) -> Result<View, Error> {
        let snapshot = proc::read_snapshot()?;
        View::from_snapshot(snapshot, selection, depth, fold)
    }

    /// Builds the view from a snapshot already read.
    pub fn from_snapshot(
        mut snapshot: Snapshot,
        selection: &Selection,
        depth: Depth,
        fold: bool,
    ) -> Result<View, Error> {
        let matched = matches(&snapshot, selection)?;
        let shown: HashSet<Pid> = match selection {
            Selection::All => matched.iter().copied().collect(),
            _ => expand(&snapshot, &matched),
        };
        let shown_list: Vec<Pid> = snapshot
            .processes
            .iter()
            .map(|p| p.pid)
            .filter(|p| shown.contains(p))
            .collect();
        let (roles, peers) = match depth {
            Depth::Ps => (Roles::default(), Peers::default()),
            Depth::Full(details) => {
                proc::fill_details(&mut snapshot, &shown_list, details);
                let peers = peers::resolve(&snapshot, &shown_list);
                (classify(&snapshot), peers)
            }
        };
        let mut forest = build(&snapshot, &shown);
        if fold {
            forest = compact(forest, &snapshot, &roles);
        }
        let mut ttys = TtyNames::from_system();
        let mut users = UserNames::default();
        let mut tty_names = HashMap::new();
        let mut user_names = HashMap::new();
        for pid in &shown_list {
            let Some(p) = snapshot.get(*pid) else {
                continue;
            };
            tty_names
                .entry(p.tty_nr)
                .or_insert_with(|| ttys.name(p.tty_nr));
            if let Some(uid) = p.uid
                && !user_names.contains_key(&uid)
                && let Some(name) = users.name(uid)
            {
                user_names.insert(uid, name);
            }
        }
        Ok(View {
            snapshot,
            roles,
            peers,
            forest,
            matched,
            tty_names,
            user_names,
        })
    }

    pub fn tty_name(&self, tty_nr: u32) -> &str {
        self.tty_names.get(&tty_nr).map_or("?", String::as_str)
    }
}
