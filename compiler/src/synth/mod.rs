//! Network synthesis: seed architectures (built-in MLP, TOML seed files), magnitude pruning,
//! NeST connection and neuron growth, SCANN's cross-layer DAGs and input reduction, dead-unit
//! removal, and the schedules that combine them.

pub mod area;
pub mod grow;
pub mod grow_maps;
pub mod nest;
pub mod prune;
pub mod reduce;
pub mod scann;
pub mod schedule;
pub mod seed;
pub mod seed_file;
pub mod surgery;
