//! Everything Knex keeps in one database — its migration tables, their rows and their lock tables — in
//! ONE round trip: one statement, sent with its parameters in one message (Parse, Bind, Describe,
//! Execute and Sync together, tokio-postgres' `query_typed`), so there is no prepare round trip either.
//!
//! A single SELECT cannot name tables it has not found yet, so the statement reads each table with
//! `query_to_xml(format('SELECT … FROM %I.%I', schema, table), …)`: the core SQL/XML function that runs
//! a query given as text. The inner query aggregates the table into JSON and hex-encodes it, so the XML
//! wrapper holds nothing but `[0-9a-f]` (no XML escaping to undo); the outer query cuts the hex out,
//! decodes it, and returns one JSON document for the whole database. Names go through `%I` (quoted
//! identifiers) and parameters, never spliced raw into SQL.

use std::sync::OnceLock;

use serde::Deserialize;

use super::{TableContents, TableRef};
use crate::knex::model::{LockRow, MigrationRow};

/// The statement: `$1` the schemas to read (`NULL`: every user schema), `$2` one table name (`NULL`:
/// every `%knex_migrations` table). Answers one row, one `text` column: a JSON array of
/// `{"schema", "table", "rows": [[id, name, batch, time]], "lock": [[index, is_locked]] | null}`.
pub fn statement() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        // Microsecond timestamps in UTC, as RFC 3339 text: exact, whatever the session's time zone.
        let rows = read_table(
            "id, name, batch, to_char(migration_time::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
            "id",
            "t",
        );
        let lock = read_table("\"index\", is_locked", "\"index\"", "t || '_lock'");
        format!(
            "WITH found AS ( \
               SELECT t.table_schema::text AS s, t.table_name::text AS t, \
                 EXISTS (SELECT 1 FROM information_schema.tables l \
                         WHERE l.table_schema::text = t.table_schema::text \
                           AND l.table_name::text = t.table_name::text || '_lock') AS has_lock \
               FROM information_schema.tables t \
               WHERE t.table_type = 'BASE TABLE' \
                 AND t.table_schema NOT IN ('pg_catalog', 'information_schema') \
                 AND ($1::text[] IS NULL OR t.table_schema::text = ANY ($1::text[])) \
                 AND CASE WHEN $2::text IS NULL \
                     THEN t.table_name::text LIKE '%knex\\_migrations' ESCAPE '\\' \
                     ELSE t.table_name::text = $2::text END \
             ) \
             SELECT coalesce(json_agg(json_build_object( \
                 'schema', s, 'table', t, 'rows', {rows}, \
                 'lock', CASE WHEN has_lock THEN {lock} END) ORDER BY s, t), '[]')::text \
             FROM found"
        )
    })
}

/// The SQL expression that reads `columns` of the table named by `table_sql` in schema `s` as a JSON
/// array of arrays, ordered by `order`.
fn read_table(columns: &str, order: &str, table_sql: &str) -> String {
    let inner = format!(
        "SELECT encode(convert_to(coalesce((SELECT json_agg(json_build_array({columns}) ORDER BY {order}) FROM %I.%I), '[]')::text, 'UTF8'), 'hex') AS h"
    );
    format!(
        "convert_from(decode(substring(query_to_xml(format('{}', s, {table_sql}), false, true, '')::text \
         FROM '<h>([0-9a-f]*)</h>'), 'hex'), 'UTF8')::json",
        inner.replace('\'', "''")
    )
}

#[derive(Debug, Deserialize)]
struct TableJson {
    schema: String,
    table: String,
    rows: Vec<(i32, String, Option<i32>, Option<String>)>,
    lock: Option<Vec<(i32, Option<i32>)>>,
}

/// The statement's answer as tables and their contents, `knex_migrations` first in each schema, then
/// the prefixed tables by name.
pub fn parse(json: &str) -> Result<Vec<(TableRef, TableContents)>, String> {
    let tables: Vec<TableJson> =
        serde_json::from_str(json).map_err(|e| format!("unexpected answer: {e}"))?;
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let rows = t
            .rows
            .into_iter()
            .map(|(id, name, batch, time)| {
                let migration_time = time
                    .map(|text| {
                        text.parse::<jiff::Timestamp>()
                            .map_err(|e| format!("migration_time {text:?}: {e}"))
                    })
                    .transpose()?;
                Ok(MigrationRow {
                    id,
                    name,
                    batch,
                    migration_time,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let lock = t.lock.map(|rows| {
            rows.into_iter()
                .map(|(index, is_locked)| LockRow { index, is_locked })
                .collect()
        });
        out.push((
            TableRef {
                schema: t.schema,
                table: t.table,
            },
            TableContents { rows, lock },
        ));
    }
    out.sort_by(|(a, _), (b, _)| knex_order(a).cmp(&knex_order(b)));
    Ok(out)
}

/// `knex_migrations` first, then the prefixed ones by name, schema by schema.
pub fn knex_order(table: &TableRef) -> (&str, bool, &str) {
    (
        &table.schema,
        table.table != "knex_migrations",
        &table.table,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_and_ordered_like_knex() {
        let json = r#"[
          {"schema":"public","table":"backstage_backend_tasks__knex_migrations","rows":[],"lock":null},
          {"schema":"public","table":"knex_migrations",
           "rows":[[1,"20200101_init.js",1,"2024-05-01T10:20:30.123456Z"],[2,"b.js",null,null]],
           "lock":[[1,0]]}
        ]"#;
        let tables = parse(json).unwrap();
        assert_eq!(tables[0].0.table, "knex_migrations");
        assert_eq!(
            tables[1].0.table,
            "backstage_backend_tasks__knex_migrations"
        );
        let rows = &tables[0].1.rows;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "20200101_init.js");
        assert_eq!(rows[0].batch, Some(1));
        assert_eq!(
            rows[0].migration_time.unwrap().to_string(),
            "2024-05-01T10:20:30.123456Z"
        );
        assert_eq!(rows[1].batch, None);
        assert_eq!(rows[1].migration_time, None);
        assert_eq!(tables[0].1.lock.as_deref().map(<[_]>::len), Some(1));
        assert!(tables[1].1.lock.is_none());
    }

    #[test]
    fn a_malformed_answer_is_an_error_not_a_panic() {
        assert!(parse("[{\"schema\":1}]").is_err());
        assert!(
            parse(r#"[{"schema":"s","table":"t","rows":[[1,"a",1,"yesterday"]],"lock":null}]"#)
                .is_err()
        );
    }

    #[test]
    fn the_statement_quotes_the_inner_queries() {
        let sql = statement();
        assert!(sql.contains("format('SELECT encode(convert_to(coalesce((SELECT json_agg("));
        assert!(sql.contains("AT TIME ZONE ''UTC''"));
        assert!(sql.contains("FROM %I.%I), ''[]'')::text, ''UTF8''), ''hex'') AS h', s, t)"));
        assert!(sql.contains("', s, t || '_lock')"));
    }
}
