//! Network synthesis. For now: seed architectures; grow-and-prune (NeST, SCANN) builds on these.

pub mod seed;
