//! The adapters around Knex: where a version's migration files come from ([`source`]: a local folder
//! or a running pod, whose files [`pod`] lists over pod exec with Node) and where Knex itself runs to
//! undo migrations ([`runner`]: `node` in the pod or locally); and what a version is made of
//! ([`inventory`]: its packages and `backstage.json`, for `version`). The pure model they feed is
//! [`crate::knex`].

pub mod inventory;
pub mod pod;
pub mod runner;
pub mod source;
