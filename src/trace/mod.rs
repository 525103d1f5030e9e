//! Live observation of signals and process lifecycle: tracefs (the
//! kernel's signal and sched tracepoints) and ptrace.

pub mod ptrace;
pub mod rate;
pub mod tracefs;
pub mod tracefs_parse;
