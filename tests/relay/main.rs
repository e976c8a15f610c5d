//! The relay end to end, in process: real PDS websocket and PLC directory on
//! 127.0.0.1, real RocksDB in a temp dir, real keys and signed commits, real
//! subscribers. Every test is bounded in time.

mod binary;
mod conformance;
mod control;
mod crash;
mod cursor;
mod endpoints;
mod grafana;
mod harness;
mod hostile_clients;
mod hostile_hosts;
mod loadtest;
mod log_stall;
mod mirror;
mod ordering;
mod outage;
mod pipeline;
mod restart;
mod subscriber_cap;
