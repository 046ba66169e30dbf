//! The adapters around Knex: where a version's migration files come from ([`source`]: a local folder,
//! a running pod, whose files [`pod`] lists over pod exec with Node, or an image not yet deployed,
//! read by [`image`] in a short-lived preflight pod) and where Knex itself runs to
//! undo migrations ([`runner`]: `node` in the pod or locally); and what a version is made of
//! ([`inventory`]: its packages and `backstage.json`, for `version`); and whether migrations can be
//! undone ([`reversibility`]: their `down()` loaded with Node where the files are). The pure model they feed is
//! [`crate::knex`].

pub mod image;
pub mod inventory;
pub mod pod;
pub mod reversibility;
pub mod runner;
pub mod source;
