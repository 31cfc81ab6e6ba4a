//! The runtime's wiring: building the core and serving (`app`), the background refresh loops (`refresh`)
//! and the loader of the broker's client certificate (`certificate_loader`).

pub mod app;
pub mod certificate_loader;
pub mod refresh;
