//! The runtime's wiring: building the core and serving (`app`), the background refresh loops (`refresh`),
//! the loader of the broker's client certificate (`certificate_loader`) and the policy document's reads
//! under a timeout (`policy_loader`).

pub mod app;
pub mod certificate_loader;
pub mod policy_loader;
pub mod refresh;
