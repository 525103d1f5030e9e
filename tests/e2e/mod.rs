//! Harness of the end-to-end test on the real stack (tests/e2e_incident.rs):
//! npm installs cached by lockfile, PM2 deployments in temporary
//! directories, a guard that ends them, a streaming `who-killed`.

pub mod cmd;
pub mod deploy;
pub mod guard;
pub mod install;
pub mod watch;
