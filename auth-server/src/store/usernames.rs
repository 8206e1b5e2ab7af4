//! Accounts stored before migration 0005 get their username skeleton, and the canonical key of the
//! current profile, when the store migrates (SQL cannot compute either). Their old keys were NFKC and
//! lower case: the same for ASCII names, and for most others; where the new key differs (`ß` folds
//! to `ss`, a final `ς` to `σ`) the row takes the new key so that its owner can still log in. The
//! oldest account wins a clash: a younger one whose new key or skeleton is taken keeps its old key
//! (and, when even that skeleton is taken, no skeleton), and is logged by id for the operator.

use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

use super::dialect::Dialect;
use super::rows::user_columns;
use super::sql::SqlStore;
use super::{StoreResult, UserRecord};

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> UserRecord: FromRow<'r, DB::Row>,
{
    /// Fills in the skeleton (and current key) of every account that has none, oldest first.
    pub(super) async fn backfill_usernames(&self) -> StoreResult<()> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username_skeleton IS NULL ORDER BY created_at, id"
        );
        let users: Vec<UserRecord> = sqlx::query_as(sql).fetch_all(&self.pool).await?;
        for user in users {
            let old_key = user.username_key.as_str();
            let fresh = match crate::username::parse(&user.username) {
                Ok(name) => Some((name.key, name.skeleton)),
                Err(_) => {
                    tracing::warn!(user_id = %user.id,
                        "stored username is refused by the username profile: it can no longer \
                         log in by name (manage it by id)");
                    None
                }
            };
            let mut tries = Vec::with_capacity(2);
            if let Some((key, skeleton)) = &fresh {
                tries.push((key.clone(), skeleton.clone()));
            }
            if fresh.as_ref().is_none_or(|(key, _)| key != old_key) {
                tries.push((old_key.to_owned(), crate::username::skeleton(old_key)));
            }
            let mut done = None;
            for (i, (key, skeleton)) in tries.iter().enumerate() {
                if self.set_username_canon(&user.id, key, skeleton).await? {
                    done = Some(i);
                    break;
                }
            }
            match (done, &fresh) {
                (Some(0), Some(_)) => {}
                (Some(_), Some(_)) => tracing::warn!(user_id = %user.id,
                    "username kept its pre-0005 key: an older account has the same canonical name"),
                (Some(_), None) => {}
                (None, _) => tracing::warn!(user_id = %user.id,
                    "username looks like an older account's (same skeleton): left without a \
                     skeleton; rename or delete one of them"),
            }
        }
        Ok(())
    }

    /// Sets a legacy account's key and skeleton; false when either is taken (or another replica
    /// filled the row first).
    async fn set_username_canon(&self, id: &str, key: &str, skeleton: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET username_key = $2, username_skeleton = $3 \
             WHERE id = $1 AND username_skeleton IS NULL",
        )
        .bind(id)
        .bind(key)
        .bind(skeleton)
        .execute(&self.pool)
        .await;
        match done {
            Ok(r) => Ok(DB::rows_affected(&r) > 0),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
