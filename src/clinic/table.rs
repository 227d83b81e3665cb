//! The statements every soft-deleted clinic table shares: a live row by id
//! (locked or not), a page of live rows, a soft delete. Each resource
//! describes its table once as a [`Table`] and keeps its own SQL for what
//! differs (list filters and order, inserts, updates).

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{FromRow, PgConnection, Postgres};
use uuid::Uuid;

use super::{fetch_list, list_statement, Page};

/// One clinic table whose rows are soft deleted (`deleted_at`).
pub struct Table {
    /// The table's name.
    pub name: &'static str,
    /// The name its columns are qualified with in `columns` and in list
    /// filters: its alias when it has joins, else its name.
    pub alias: &'static str,
    /// What is joined to each row, if anything (`JOIN … ON …`).
    pub joins: &'static str,
    /// The columns read, in the shape of the resource's row.
    pub columns: &'static str,
}

/// How a row read by id is locked until the caller's transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Not locked: a plain read.
    None,
    /// Against any change and other lockers (`FOR UPDATE`).
    Update,
    /// Against changes, not against other readers (`FOR SHARE`).
    Share,
}

impl Table {
    /// `SELECT <columns> FROM <table> [<alias>] <joins>`.
    pub fn select(&self) -> String {
        format!("SELECT {} FROM {}", self.columns, self.from())
    }

    fn from(&self) -> String {
        if self.alias == self.name {
            format!("{} {}", self.name, self.joins)
        } else {
            format!("{} {} {}", self.name, self.alias, self.joins)
        }
    }

    /// A live row by id, locked as asked (only this table's row, not the
    /// joined ones).
    pub async fn find<T>(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
        lock: Lock,
    ) -> Result<Option<T>, sqlx::Error>
    where
        T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        let alias = self.alias;
        let lock = match lock {
            Lock::None => String::new(),
            Lock::Update => format!("FOR UPDATE OF {alias}"),
            Lock::Share => format!("FOR SHARE OF {alias}"),
        };
        sqlx::query_as(&format!(
            "{} WHERE {alias}.id = $1 AND {alias}.deleted_at IS NULL {lock}",
            self.select()
        ))
        .bind(id)
        .fetch_optional(conn)
        .await
    }

    /// A page of the rows matching `filter`, in the order of `tail`
    /// (`ORDER BY … LIMIT $n OFFSET $n+1`), and how many match in all, from
    /// one statement ([`list_statement`]). `bind` binds the filter's
    /// parameters; the page's limit and offset are bound after them.
    pub async fn list<T>(
        &self,
        conn: &mut PgConnection,
        filter: &str,
        tail: &str,
        page: Page,
        bind: impl for<'q> FnOnce(Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments>,
    ) -> Result<(Vec<T>, i64), sqlx::Error>
    where
        T: for<'r> FromRow<'r, PgRow>,
    {
        let statement = list_statement(&self.from(), filter, &self.select(), tail);
        let query = bind(sqlx::query(&statement))
            .bind(page.limit)
            .bind(page.offset);
        fetch_list(conn, query).await
    }

    /// Soft-deletes a live row and returns its `column` (a uuid); `None`
    /// when there was no live row.
    pub async fn soft_delete_returning(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
        column: &str,
    ) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar(&format!(
            "UPDATE {} SET deleted_at = now(), updated_at = now()
              WHERE id = $1 AND deleted_at IS NULL RETURNING {column}",
            self.name
        ))
        .bind(id)
        .fetch_optional(conn)
        .await
    }

    /// Soft-deletes a live row; `false` when there was none.
    pub async fn soft_delete(
        &self,
        conn: &mut PgConnection,
        id: Uuid,
    ) -> Result<bool, sqlx::Error> {
        Ok(self.soft_delete_returning(conn, id, "id").await?.is_some())
    }
}
