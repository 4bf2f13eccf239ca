//! One module per command: each turns its parsed arguments into work and prints what happened.
//! Commands that run another (setup runs copy and batch, bench runs copy) pass typed arguments.

pub(crate) mod batch;
pub(crate) mod bench;
mod clients;
pub(crate) mod copy;
pub(crate) mod demo;
mod run;
pub(crate) mod setup;
pub(crate) mod status;
pub(crate) mod verify;

pub use clients::{Client, Places, clients};
pub(crate) use clients::{clients_and_places, write_private};
pub use run::run;
