//! ptree: who started whom, who killed whom, and whether the next kill is
//! on its way, for Node.js services on Linux.
//!
//! Data flows one way: readers of the kernel (`proc`) build the model
//! (`model`), pure analysis (`analysis`) derives roles, selections and
//! trees, and renderers (`render`) format the result.

pub mod analysis;
pub mod audit;
pub mod cli;
pub mod cmd;
pub mod diagnose;
pub mod duration;
pub mod error;
pub mod event;
pub mod interrupt;
pub mod model;
pub mod proc;
pub mod record;
pub mod render;
pub mod timepoint;
pub mod trace;
pub mod view;
pub mod watch;

pub use error::Error;
