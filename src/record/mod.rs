//! The flight recorder: `ptree record` writes what who-killed would have
//! seen into JSON lines (schema `ptree.recording/1`, docs/recording.md);
//! `who-killed --from` and `report` replay it after the fact.
//!
//! - [`format`]: the lines of the file, and their conversion to and from
//!   model types;
//! - [`writer`]: the file itself (mode 0600, flushing, rotation);
//! - [`machine`]: the recorder's pruned view of every process;
//! - [`recorder`]: the live loop over a tracefs instance;
//! - [`read`]: reading files back, tolerating a cut last line;
//! - [`replay`]: `who-killed --from`;
//! - [`timeline`]: the analysis behind `report`, and [`render`] its
//!   Markdown and JSON.

pub mod format;
pub mod machine;
pub mod read;
pub mod recorder;
pub mod render;
pub mod replay;
pub mod timeline;
pub mod writer;

pub use read::{Recording, read_recordings};
