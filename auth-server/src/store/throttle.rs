//! The SQL of login throttling (table `login_throttle`), written once for both backends: the lock
//! check, the one-statement attempt reservation, refunds, resets and the purge. The policy that
//! decides what to count is `crate::throttle`.

use async_trait::async_trait;
use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

use super::dialect::Dialect;
use super::rows::LockRow;
use super::sql::SqlStore;
use super::{AttemptRule, Reservation, StoreResult, ThrottleStore};

/// One login attempt against a throttle key, in one atomic statement: `$1` key, `$2` now, `$3` window
/// start, `$4` free failures, `$5` longest lock. With `locked` = the key is locked at `$2`, `stale` =
/// its last failure is older than the window (and it is not locked), the attempt's failure count is
/// `(stale ? 0 : failures) + 1`; reaching `$4` locks the key for `min(2^level, $5)` seconds, bumps
/// `level` and restarts the count. A locked key only counts the refusal (a race the caller's lock
/// check lost) and returns how many the lock refused; otherwise `refused` restarts at 0, so a
/// non-zero `refused` always means "refused now". Shifts are written `CAST(1 AS BIGINT) << CAST(level AS INTEGER)`, which both dialects
/// read alike.
const RESERVE_LOGIN_ATTEMPT: &str = "INSERT INTO login_throttle \
       (throttle_key, failures, last_failure_at, locked_until, level, refused) \
     VALUES ($1, CASE WHEN 1 >= $4 THEN 0 ELSE 1 END, $2, \
             CASE WHEN 1 >= $4 THEN $2 + 1 ELSE 0 END, CASE WHEN 1 >= $4 THEN 1 ELSE 0 END, 0) \
     ON CONFLICT (throttle_key) DO UPDATE SET \
       refused = CASE WHEN login_throttle.locked_until > $2 THEN login_throttle.refused + 1 \
                      ELSE 0 END, \
       failures = CASE WHEN login_throttle.locked_until > $2 THEN login_throttle.failures \
                       WHEN (CASE WHEN login_throttle.last_failure_at < $3 THEN 0 \
                                  ELSE login_throttle.failures END) + 1 >= $4 THEN 0 \
                       ELSE (CASE WHEN login_throttle.last_failure_at < $3 THEN 0 \
                                  ELSE login_throttle.failures END) + 1 END, \
       locked_until = CASE WHEN login_throttle.locked_until > $2 THEN login_throttle.locked_until \
                           WHEN (CASE WHEN login_throttle.last_failure_at < $3 THEN 0 \
                                      ELSE login_throttle.failures END) + 1 >= $4 THEN $2 + \
                             (CASE WHEN (CASE WHEN login_throttle.last_failure_at < $3 THEN 0 \
                                              ELSE login_throttle.level END) >= 30 THEN $5 \
                                   WHEN (CAST(1 AS BIGINT) << CAST((CASE WHEN login_throttle.last_failure_at < $3 \
                                              THEN 0 ELSE login_throttle.level END) AS INTEGER)) > $5 THEN $5 \
                                   ELSE (CAST(1 AS BIGINT) << CAST((CASE WHEN login_throttle.last_failure_at < $3 \
                                              THEN 0 ELSE login_throttle.level END) AS INTEGER)) END) \
                           ELSE login_throttle.locked_until END, \
       level = CASE WHEN login_throttle.locked_until > $2 THEN login_throttle.level \
                    ELSE (CASE WHEN login_throttle.last_failure_at < $3 THEN 0 \
                               ELSE login_throttle.level END) \
                         + (CASE WHEN (CASE WHEN login_throttle.last_failure_at < $3 THEN 0 \
                                            ELSE login_throttle.failures END) + 1 >= $4 \
                                 THEN 1 ELSE 0 END) END, \
       last_failure_at = CASE WHEN login_throttle.locked_until > $2 \
                              THEN login_throttle.last_failure_at ELSE $2 END \
     RETURNING locked_until, refused, failures";

#[async_trait]
impl<DB> ThrottleStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> LockRow: FromRow<'r, DB::Row>,
    for<'r> Reservation: FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    async fn login_lock(&self, keys: [&str; 3], now: i64) -> StoreResult<Option<(String, i64)>> {
        let row: Option<LockRow> = sqlx::query_as(
            "SELECT throttle_key, locked_until FROM login_throttle \
             WHERE throttle_key IN ($1, $2, $3) AND locked_until > $4 \
             ORDER BY locked_until DESC LIMIT 1",
        )
        .bind(keys[0])
        .bind(keys[1])
        .bind(keys[2])
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (r.throttle_key, r.locked_until)))
    }

    async fn note_login_refused(&self, key: &str) -> StoreResult<i64> {
        let refused: Option<i64> = sqlx::query_scalar(
            "UPDATE login_throttle SET refused = refused + 1 WHERE throttle_key = $1 \
             RETURNING refused",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(refused.unwrap_or(1))
    }

    async fn reserve_login_attempt(
        &self,
        key: &str,
        now: i64,
        rule: AttemptRule,
    ) -> StoreResult<Reservation> {
        Ok(sqlx::query_as(RESERVE_LOGIN_ATTEMPT)
            .bind(key)
            .bind(now)
            .bind(rule.window_start)
            .bind(rule.free.max(1))
            .bind(rule.max_delay.max(1))
            .fetch_one(&self.pool)
            .await?)
    }

    async fn refund_login_attempt(&self, key: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE login_throttle SET failures = failures - 1 \
             WHERE throttle_key = $1 AND failures > 0",
        )
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reset_login_failures(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_throttle WHERE throttle_key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_login_throttle(&self, before: i64, now: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM login_throttle WHERE last_failure_at < $1 AND locked_until <= $2",
        )
        .bind(before)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done))
    }
}
