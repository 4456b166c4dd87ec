//! The pipeline stages as pure async functions over the ports, shared by the Lambda functions and
//! the local process.

pub mod buffer;
pub mod ingest;
pub mod track;
