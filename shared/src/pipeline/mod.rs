//! The inbound stages (ingest, track) as pure async functions over the ports, shared by the Lambda
//! functions and the local process. Nothing here uses `delivery` (the outbound half).

pub mod ingest;
pub mod track;
