//! `--format json`: one document, schema `ptree.tree/1` (docs/json.md).

use chrono::SecondsFormat;
use serde::Serialize;

use crate::analysis::roles::Role;
use crate::analysis::title::egg_title;
use crate::analysis::tree::TreeNode;
use crate::model::{Peer, Pid};
use crate::render::cells::{cpu_time, fd_kind_target, stat};
use crate::view::View;

pub const TREE_SCHEMA: &str = "ptree.tree/1";

#[derive(Debug, Serialize)]
pub struct TreeDoc {
    pub schema: &'static str,
    pub generated_at: String,
    pub roots: Vec<Node>,
}

#[derive(Debug, Serialize)]
pub struct FdJson {
    pub kind: &'static str,
    pub target: String,
    pub peers: Vec<Peer>,
    /// True when `peers` is empty only because some processes' fds could
    /// not be read: the reader may exist, unseen.
    pub peers_unknown: bool,
}

#[derive(Debug, Serialize)]
pub struct Node {
    pub pid: Pid,
    pub ppid: Pid,
    pub pgid: i32,
    pub sid: Pid,
    pub tty: String,
    pub tpgid: i32,
    pub stat: String,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub time: String,
    pub start_time: String,
    pub comm: String,
    pub cmdline: String,
    pub argv: Vec<String>,
    pub role: Role,
    pub title: Option<String>,
    pub stdout: FdJson,
    pub stderr: FdJson,
    pub threads: i64,
    /// Pids of identical siblings folded into this node (`--compact` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub folded: Vec<Pid>,
    pub children: Vec<Node>,
}

fn node(view: &View, n: &TreeNode) -> Option<Node> {
    let p = view.snapshot.get(n.pid)?;
    let fd = |num: u8| {
        let f = p
            .fds
            .as_ref()
            .map(|f| if num == 1 { &f.stdout } else { &f.stderr });
        let (kind, target) = fd_kind_target(f);
        FdJson {
            kind,
            target,
            peers: view.peers.of(p.pid, num).to_vec(),
            peers_unknown: view.peers.is_unknown(p.pid, num),
        }
    };
    Some(Node {
        pid: p.pid,
        ppid: p.ppid,
        pgid: p.pgid.0,
        sid: p.sid,
        tty: view.tty_name(p.tty_nr).to_string(),
        tpgid: p.tpgid,
        stat: stat(p),
        uid: p.uid,
        user: p.uid.and_then(|u| view.user_names.get(&u).cloned()),
        time: cpu_time(p, view.snapshot.ticks_per_second),
        start_time: p.start_time.to_rfc3339_opts(SecondsFormat::Millis, true),
        comm: p.comm_lossy(),
        cmdline: p.command(),
        argv: p.argv.escaped(),
        role: view.roles.of(p.pid),
        title: egg_title(&p.argv),
        stdout: fd(1),
        stderr: fd(2),
        threads: p.threads,
        folded: n.folded.clone(),
        children: n.children.iter().filter_map(|c| node(view, c)).collect(),
    })
}

/// The document for a view.
pub fn document(view: &View) -> TreeDoc {
    TreeDoc {
        schema: TREE_SCHEMA,
        generated_at: view
            .snapshot
            .taken_at
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        roots: view.forest.iter().filter_map(|n| node(view, n)).collect(),
    }
}

pub fn render(view: &View) -> String {
    let mut s = serde_json::to_string_pretty(&document(view)).unwrap_or_else(|e| {
        // Serialising plain owned data cannot fail; say so if it ever does.
        format!("{{\"error\":\"{e}\"}}")
    });
    s.push('\n');
    s
}
