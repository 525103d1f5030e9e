//! Renderers: they format a [`crate::view::View`] and never read the kernel.

pub mod cells;
pub mod json;
pub mod layout;
pub mod table;
pub mod text;
