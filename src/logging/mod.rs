//! Where a log line is written: JSON logs and the audit line (`telemetry`), the audit line's JSON writer
//! (`json_line`) and batched stdout (`log_writer`).

pub mod json_line;
pub mod log_writer;
pub mod telemetry;
