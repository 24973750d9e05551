//! Network synthesis: seed architectures, magnitude pruning, NeST connection growth, and the
//! schedules that combine them (`grow_and_prune`).

pub mod nest;
pub mod prune;
pub mod schedule;
pub mod seed;
