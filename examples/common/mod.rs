//! What the benchmarks share: the release binary they time, and a child
//! process that is killed when the benchmark ends, however it ends. Each
//! benchmark uses what it needs of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Child;

/// `$PTREE_BIN`, or this checkout's release build.
pub fn ptree_bin() -> PathBuf {
    std::env::var_os("PTREE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/ptree"),
        PathBuf::from,
    )
}

/// A child killed and reaped on drop.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
