//! The metadata model, independent of any backend: canonical JSON, the role files, the Notary
//! v1 dialect, and the client rules that are checked before anything is exported.

pub mod canonical;
pub mod model;
pub mod notary;
pub mod time;
pub mod verify;
