//! Releasing a Knex migration lock in one transaction. The lock rows are read `FOR UPDATE` (as Knex
//! reads them before it takes the lock) and released only if they still block migrations, so a
//! session that takes or frees the lock at the same moment is waited for, never overwritten.
//!
//! The statements, in one transaction: `SET LOCAL lock_timeout`, `SELECT "index", is_locked FROM
//! <lock table> ORDER BY "index" FOR UPDATE`, then `UPDATE … SET is_locked = 0` for the usual single
//! held row (a Knex waiting on that row then sees it free), or — for irregular rows — what
//! `knex migrate:unlock` does: every row deleted and one free row put back.

use std::time::Duration;

use super::{Connection, DbError, TableRef, error, quote_ident, reset_lock_rows};
use crate::knex::model::{LockRow, LockState, lock_table_name};

/// How long a release after `db rollback` waits for another session's row lock.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);

/// PostgreSQL's `lock_not_available`: `lock_timeout` ran out.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// What one release found under the row lock, and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The lock still blocked migrations; it is now one free row.
    Released { was: LockState },
    /// The lock no longer blocked migrations (another session freed it first): nothing changed.
    AlreadyFree { now: LockState },
}

/// A duration as the user wrote it: whole seconds as `3s`, else milliseconds.
pub fn duration_text(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

impl Connection {
    /// Releases the lock of `table` if, read under a row lock, it still blocks migrations. Waits at
    /// most `lock_wait` (`None`: as long as it takes) for another session holding the lock rows;
    /// then fails with nothing changed.
    pub async fn release_lock_if_held(
        &mut self,
        table: &TableRef,
        lock_wait: Option<Duration>,
    ) -> Result<Release, DbError> {
        let lock_table = lock_table_name(&table.table);
        let qualified = format!(
            "{}.{}",
            quote_ident(&table.schema),
            quote_ident(&lock_table)
        );
        let what = format!("release {}.{lock_table}", table.schema);
        let database = self.database.clone();
        let fail = |e: tokio_postgres::Error| {
            let message = if e.code().map(|c| c.code()) == Some(LOCK_NOT_AVAILABLE) {
                format!(
                    "another session kept its rows locked for more than {} (a pod may be taking the lock right now); this lock was not changed",
                    duration_text(lock_wait.unwrap_or_default())
                )
            } else {
                error::one_line(&e)
            };
            DbError::Query {
                database: database.clone(),
                what: what.clone(),
                message,
            }
        };
        let transaction = self.client.transaction().await.map_err(fail)?;
        // 0 is "wait forever" to PostgreSQL, which takes at most i32::MAX milliseconds.
        let millis = lock_wait.map_or(0, |d| d.as_millis().clamp(1, i32::MAX as u128));
        transaction
            .batch_execute(&format!("SET LOCAL lock_timeout = {millis}"))
            .await
            .map_err(fail)?;
        let rows: Vec<LockRow> = transaction
            .query(
                &format!(
                    "SELECT \"index\", is_locked FROM {qualified} ORDER BY \"index\" FOR UPDATE"
                ),
                &[],
            )
            .await
            .map_err(fail)?
            .iter()
            .map(|r| LockRow {
                index: r.get(0),
                is_locked: r.get(1),
            })
            .collect();
        let state = LockState::from_rows(Some(&rows));
        if !state.blocks_migrations() {
            transaction.rollback().await.map_err(fail)?;
            return Ok(Release::AlreadyFree { now: state });
        }
        match (state, rows.as_slice()) {
            (LockState::Held, [row]) => {
                transaction
                    .execute(
                        &format!("UPDATE {qualified} SET is_locked = 0 WHERE \"index\" = $1"),
                        &[&row.index],
                    )
                    .await
                    .map_err(fail)?;
            }
            _ => {
                reset_lock_rows(&transaction, &qualified)
                    .await
                    .map_err(fail)?;
            }
        }
        transaction.commit().await.map_err(fail)?;
        Ok(Release::Released { was: state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(duration_text(Duration::from_secs(3)), "3s");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_text(DEFAULT_LOCK_WAIT), "30s");
    }
}
