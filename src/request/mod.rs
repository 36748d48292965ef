pub mod canonical_path;
pub mod cidr;
pub mod faults;
pub mod inbound;
pub mod policy;
pub mod regions;
pub mod unicode_tables;
pub mod url;
