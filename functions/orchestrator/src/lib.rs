//! Submit and poll, the two stages that talk to Auth0, over any object store: the Lambdas run
//! them on S3, the CLI's `migrate` on a local folder. The same code, the same ledger rules.

pub mod finalize;
pub mod poll;
pub mod reconcile;
pub mod submit;
#[cfg(test)]
mod testing;
