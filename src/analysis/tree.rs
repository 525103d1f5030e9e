//! The forest of shown processes, ordered as `ps f` orders it.

use std::collections::{HashMap, HashSet};

use crate::model::{Pid, Snapshot};

/// One process in the view and its shown children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    pub pid: Pid,
    /// Pids of identical sibling subtrees folded into this one (`--compact`).
    pub folded: Vec<Pid>,
    pub children: Vec<TreeNode>,
}

impl TreeNode {
    /// How many processes this node stands for.
    pub fn count(&self) -> usize {
        1 + self.folded.len()
    }
}

/// Builds the forest of `shown` processes.
///
/// Roots are shown processes whose parent is not shown. procps lists them
/// last-first in its (ppid, start time) order, so kthreadd precedes PID 1;
/// ptree keeps that order. A snapshot is not atomic: a recycled pid can make a parent link
/// point into its own subtree. Such cycles are cut, never followed.
pub fn build(snapshot: &Snapshot, shown: &HashSet<Pid>) -> Vec<TreeNode> {
    let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
    let mut roots = Vec::new();
    for p in &snapshot.processes {
        if !shown.contains(&p.pid) {
            continue;
        }
        if p.ppid != p.pid && shown.contains(&p.ppid) {
            children.entry(p.ppid).or_default().push(p.pid);
        } else {
            roots.push(p.pid);
        }
    }
    // Snapshot order is (start time, pid); make it (ppid, start time, pid)
    // and reverse it, as procps walks its sorted array from the end.
    let position: HashMap<Pid, usize> = snapshot.index.clone();
    roots.sort_by_key(|pid| {
        let ppid = snapshot.get(*pid).map_or(0, |p| p.ppid.0);
        (ppid, position.get(pid).copied().unwrap_or(usize::MAX))
    });
    roots.reverse();
    let mut visited: HashSet<Pid> = HashSet::new();
    let mut forest: Vec<TreeNode> = roots
        .into_iter()
        .map(|r| grow(r, &children, &mut visited))
        .collect();
    // Whatever was not reached sits on a cycle: start a root there.
    for p in &snapshot.processes {
        if shown.contains(&p.pid) && !visited.contains(&p.pid) {
            forest.push(grow(p.pid, &children, &mut visited));
        }
    }
    forest
}

fn grow(root: Pid, children: &HashMap<Pid, Vec<Pid>>, visited: &mut HashSet<Pid>) -> TreeNode {
    visited.insert(root);
    let kids = children
        .get(&root)
        .into_iter()
        .flatten()
        .copied()
        .filter(|c| !visited.contains(c))
        .collect::<Vec<_>>();
    let mut node = TreeNode {
        pid: root,
        folded: Vec::new(),
        children: Vec::with_capacity(kids.len()),
    };
    for c in kids {
        if !visited.contains(&c) {
            node.children.push(grow(c, children, visited));
        }
    }
    node
}

/// One line of a tree view: a node and its `ps f` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    pub node: &'a TreeNode,
    pub depth: usize,
    /// ` \_ ` and ` |  ` glyphs, exactly as procps draws them.
    pub prefix: String,
}

/// Flattens the forest depth-first, drawing procps's glyphs: each level
/// below the root adds ` |  ` when that ancestor has a later sibling,
/// four spaces otherwise, and the node itself gets ` \_ `.
///
/// Like `ps f`, children of PID 1 are drawn at PID 1's own level: nearly
/// everything is init's child, and indenting it all says nothing.
pub fn rows(forest: &[TreeNode]) -> Vec<Row<'_>> {
    let mut out = Vec::new();
    // (node, depth, continuation flags of its ancestors, has later sibling)
    let mut stack: Vec<(&TreeNode, Vec<bool>)> =
        forest.iter().rev().map(|n| (n, Vec::new())).collect();
    while let Some((node, conts)) = stack.pop() {
        let depth = conts.len();
        let mut prefix = String::new();
        if depth > 0 {
            for &c in &conts[..depth - 1] {
                prefix.push_str(if c { " |  " } else { "    " });
            }
            prefix.push_str(" \\_ ");
        }
        out.push(Row {
            node,
            depth,
            prefix,
        });
        let n = node.children.len();
        for (i, child) in node.children.iter().enumerate().rev() {
            let mut c = conts.clone();
            if node.pid == Pid::INIT {
                if c.pop().is_some() {
                    c.push(i + 1 < n);
                }
            } else {
                c.push(i + 1 < n);
            }
            stack.push((child, c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixture::egg_snapshot;

    #[test]
    fn glyphs_match_the_recorded_ps_axjf() {
        let snap = egg_snapshot();
        let shown: HashSet<Pid> = snap.processes.iter().map(|p| p.pid).collect();
        let forest = build(&snap, &shown);
        assert_eq!(forest.len(), 1);
        let rows = rows(&forest);
        let got: Vec<(i32, String)> = rows
            .iter()
            .map(|r| (r.node.pid.0, r.prefix.clone()))
            .collect();
        // From tests/fixtures/egg-exec-node14/ps-axjf.before.txt.
        let recorded = include_str!("../../tests/fixtures/egg-exec-node14/ps-axjf.before.txt");
        let want: Vec<(i32, String)> = recorded
            .lines()
            .skip(1)
            .map(|l| {
                let pid = l.split_whitespace().nth(1).unwrap().parse().unwrap();
                let cmd = &l[l.find(":00 ").unwrap() + 4..];
                let glyph_end = cmd
                    .find(|c: char| c != ' ' && c != '\\' && c != '_' && c != '|')
                    .unwrap();
                (pid, cmd[..glyph_end].to_string())
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn cycles_are_cut() {
        let mut snap = egg_snapshot();
        // Make the supervisor a child of the last worker: a cycle.
        let last = snap.processes.last().unwrap().pid;
        snap.get_mut(Pid(20490)).unwrap().ppid = last;
        let shown: HashSet<Pid> = snap.processes.iter().map(|p| p.pid).collect();
        let forest = build(&snap, &shown);
        assert_eq!(rows(&forest).len(), snap.processes.len());
    }
}
