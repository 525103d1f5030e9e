//! The Egg.js "title" convention that names one deployment's processes.
//!
//! `egg-scripts start --title=T` starts the master with `--title=T` and
//! `"title":"T"` inside its JSON argument; agent and app workers carry only
//! the JSON. `egg-scripts stop --title=T` finds them the same way.

use crate::model::Argv;

/// The Egg title in a command line, from `--title=T` or a JSON argument's
/// `"title"` field.
pub fn egg_title(argv: &Argv) -> Option<String> {
    let args = argv.lossy();
    if let Some(t) = args.iter().find_map(|a| a.strip_prefix("--title=")) {
        return Some(t.to_string());
    }
    args.iter().find_map(|a| json_title(a))
}

/// `"title"` of a JSON object argument. A truncated or odd argument that
/// does not parse still yields the field when it is plainly there.
fn json_title(arg: &str) -> Option<String> {
    let arg = arg.trim();
    if !arg.starts_with('{') || !arg.contains("\"title\"") {
        return None;
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(arg) {
        return map.get("title")?.as_str().map(str::to_string);
    }
    let rest = &arg[arg.find("\"title\":\"")? + "\"title\":\"".len()..];
    Some(rest[..rest.find('"')?].to_string())
}

/// A title a program set for itself (`process.title = 'T'`): the kernel then
/// shows one argument holding the title.
fn process_title(argv: &Argv) -> Option<String> {
    match argv.0.as_slice() {
        [one] => {
            let s = String::from_utf8_lossy(one);
            Some(s.split_whitespace().next()?.to_string())
        }
        _ => None,
    }
}

/// How `--title` compares titles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TitleMatch {
    /// `--title egg-server` finds `egg-server-demo`.
    Prefix,
    /// Only `egg-server-demo` itself, as `egg-scripts stop` matches.
    Exact,
}

/// Whether `argv` belongs to the deployment titled `wanted`.
pub fn matches_title(argv: &Argv, wanted: &str, how: TitleMatch) -> bool {
    let test = |t: &str| match how {
        TitleMatch::Exact => t == wanted,
        TitleMatch::Prefix => t.starts_with(wanted),
    };
    egg_title(argv).is_some_and(|t| test(&t)) || process_title(argv).is_some_and(|t| test(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Argv {
        Argv(args.iter().map(|a| a.as_bytes().to_vec()).collect())
    }

    const MASTER: &[&str] = &[
        "node",
        "--no-deprecation",
        "/srv/egg-demo/node_modules/egg-scripts/lib/start-cluster",
        r#"{"port":7001,"title":"egg-server-demo","workers":2,"baseDir":"/srv/egg-demo"}"#,
        "--title=egg-server-demo",
    ];
    const WORKER: &[&str] = &[
        "/usr/bin/node",
        "/srv/egg-demo/node_modules/egg-cluster/lib/app_worker.js",
        r#"{"framework":"/srv/egg-demo/node_modules/egg","ports":[],"env":null,"title":"egg-server-demo","clusterPort":37237}"#,
    ];

    #[test]
    fn titles_of_master_and_worker() {
        assert_eq!(egg_title(&argv(MASTER)).as_deref(), Some("egg-server-demo"));
        assert_eq!(egg_title(&argv(WORKER)).as_deref(), Some("egg-server-demo"));
        assert_eq!(egg_title(&argv(&["node", "x.js"])), None);
    }

    #[test]
    fn truncated_json_still_gives_the_title() {
        let a = argv(&["node", r#"{"title":"t1","baseDir":"/x"#]);
        assert_eq!(egg_title(&a).as_deref(), Some("t1"));
    }

    #[test]
    fn prefix_and_exact() {
        let m = argv(MASTER);
        assert!(matches_title(&m, "egg-server", TitleMatch::Prefix));
        assert!(!matches_title(&m, "egg-server", TitleMatch::Exact));
        assert!(matches_title(&m, "egg-server-demo", TitleMatch::Exact));
        assert!(!matches_title(&m, "other", TitleMatch::Prefix));
    }

    #[test]
    fn process_title_counts() {
        let a = argv(&["egg-server-demo                 "]);
        assert!(matches_title(&a, "egg-server-demo", TitleMatch::Exact));
        assert_eq!(egg_title(&a), None);
    }
}
