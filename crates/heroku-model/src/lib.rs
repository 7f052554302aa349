//! What upshift and its Heroku simulator share, in a crate of its own so that the simulator
//! (`heroku-sim`) does not depend on the product and the product can leave the simulator out.
//!
//! The product re-exports both modules at their old paths (`upshift::heroku::models`,
//! `upshift::plans`): one definition of the wire types and of the plan figures for both sides.

pub mod models;
pub mod plans;
