//! Queue adapters of the [`crate::ports::Queue`] port: SQS ([`sqs`]) for Lambda and
//! containers, and an in-process queue ([`memory`]) for `payout-bridge serve` without
//! `BRIDGE_QUEUE_URL` (lost on exit) and for tests.

pub mod memory;
pub mod sqs;

pub use memory::MemoryQueue;
pub use sqs::SqsQueue;
