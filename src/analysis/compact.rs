//! `--compact`: identical sibling subtrees folded into one, pstree style
//! (`2*[app_worker]`), compared on role and argv rather than `comm` alone,
//! so two workers of different apps never fold together.

use std::collections::HashMap;

use crate::analysis::roles::{Role, Roles};
use crate::analysis::tree::TreeNode;
use crate::model::{Argv, Snapshot};

/// The shape of a subtree: what makes two siblings identical.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Shape {
    role: Role,
    argv: Argv,
    children: Vec<(Shape, usize)>,
}

fn shape(node: &TreeNode, snapshot: &Snapshot, roles: &Roles) -> Shape {
    let argv = snapshot
        .get(node.pid)
        .map(|p| {
            if p.argv.is_empty() {
                Argv(vec![p.comm.clone()])
            } else {
                p.argv.clone()
            }
        })
        .unwrap_or_default();
    Shape {
        role: roles.of(node.pid),
        argv,
        children: node
            .children
            .iter()
            .map(|c| (shape(c, snapshot, roles), c.count()))
            .collect(),
    }
}

/// Folds identical siblings at every level, keeping the first of each
/// group in its place.
pub fn compact(forest: Vec<TreeNode>, snapshot: &Snapshot, roles: &Roles) -> Vec<TreeNode> {
    let nodes: Vec<TreeNode> = forest
        .into_iter()
        .map(|mut n| {
            n.children = compact(std::mem::take(&mut n.children), snapshot, roles);
            n
        })
        .collect();
    let mut out: Vec<TreeNode> = Vec::with_capacity(nodes.len());
    let mut first_of: HashMap<Shape, usize> = HashMap::new();
    for n in nodes {
        let s = shape(&n, snapshot, roles);
        match first_of.get(&s) {
            Some(&i) => {
                let kept = &mut out[i];
                kept.folded.push(n.pid);
                kept.folded.extend(n.folded);
            }
            None => {
                first_of.insert(s, out.len());
                out.push(n);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixture::egg_snapshot;
    use crate::analysis::roles::classify;
    use crate::analysis::tree::{build, rows};
    use crate::model::Pid;

    #[test]
    fn two_workers_fold() {
        let snap = egg_snapshot();
        let roles = classify(&snap);
        let shown = snap.processes.iter().map(|p| p.pid).collect();
        let forest = compact(build(&snap, &shown), &snap, &roles);
        let rows = rows(&forest);
        assert_eq!(rows.len(), 6);
        let w = rows.iter().find(|r| r.node.pid == Pid(20567)).unwrap();
        assert_eq!(w.node.folded, vec![Pid(20568)]);
        assert_eq!(w.node.count(), 2);
    }
}
