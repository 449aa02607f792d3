//! What each connector's inbound deliveries (WeCom callbacks, tracking batches) came to:
//! how many were answered and how many failed, when the last of each came, and why the
//! last failure failed, so an admin sees at a glance whether WeCom reaches us and, if not,
//! why (a wrong token, an AES key that does not decrypt, a clock out of the replay window).
//!
//! A delivery is counted in memory ([`InboundHealth::record`], no I/O on the hot path) and
//! the counts are added to `connector_inbound` once a second and before each read, so a
//! crash loses at most a second of counts and never a delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Statement};
use serde::Serialize;

use crate::db::entities::connector_inbound;
use crate::db::placeholder;

/// How often the counts are written.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The longest reason kept, in characters.
const REASON_CHARS: usize = 300;

/// How one delivery went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Answered,
    /// Refused or failed: the status the sender got and why.
    Failed {
        status: u16,
        reason: String,
    },
}

/// Counts not written yet, per workspace and connector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Pending {
    ok: i64,
    failed: i64,
    last_ok_ms: Option<i64>,
    last_failed: Option<(i64, u16, String)>,
}

/// The counts of this process not yet written.
#[derive(Debug, Default)]
pub struct InboundHealth {
    pending: Mutex<HashMap<(String, String), Pending>>,
}

/// A connector's inbound health, as its page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    pub ok_total: i64,
    pub failed_total: i64,
    pub last_ok_at: Option<DateTime<Utc>>,
    pub last_failed_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_failure: Option<String>,
}

impl InboundHealth {
    /// Counts one delivery to `connector` in `workspace`.
    pub fn record(&self, workspace: &str, connector: &str, delivery: Delivery) {
        let now = Utc::now().timestamp_millis();
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let p = pending
            .entry((workspace.to_owned(), connector.to_owned()))
            .or_default();
        match delivery {
            Delivery::Answered => {
                p.ok += 1;
                p.last_ok_ms = Some(now);
            }
            Delivery::Failed { status, reason } => {
                p.failed += 1;
                let reason: String = reason.trim().chars().take(REASON_CHARS).collect();
                p.last_failed = Some((now, status, reason));
            }
        }
    }

    /// Adds the counts not written yet to `connector_inbound`. Counts that fail to be
    /// written are kept for the next flush.
    pub async fn flush<C: ConnectionTrait>(&self, conn: &C) -> Result<(), sea_orm::DbErr> {
        let taken: Vec<((String, String), Pending)> = match self.pending.lock() {
            Ok(mut p) => p.drain().collect(),
            Err(_) => return Ok(()),
        };
        let backend = conn.get_database_backend();
        let ph: Vec<String> = (1..=8).map(|n| placeholder(backend, n)).collect();
        let sql = format!(
            "INSERT INTO connector_inbound (workspace_id, connector, ok_total, failed_total, \
             last_ok_ms, last_failed_ms, last_status, last_failure) VALUES ({}) \
             ON CONFLICT (workspace_id, connector) DO UPDATE SET \
             ok_total = connector_inbound.ok_total + excluded.ok_total, \
             failed_total = connector_inbound.failed_total + excluded.failed_total, \
             last_ok_ms = COALESCE(excluded.last_ok_ms, connector_inbound.last_ok_ms), \
             last_failed_ms = COALESCE(excluded.last_failed_ms, connector_inbound.last_failed_ms), \
             last_status = COALESCE(excluded.last_status, connector_inbound.last_status), \
             last_failure = COALESCE(excluded.last_failure, connector_inbound.last_failure)",
            ph.join(", ")
        );
        let mut unwritten = Vec::new();
        let mut error = None;
        for ((workspace, connector), p) in taken {
            if error.is_some() {
                unwritten.push(((workspace, connector), p));
                continue;
            }
            let (failed_ms, status, reason) = match &p.last_failed {
                Some((at, status, reason)) => {
                    (Some(*at), Some(i32::from(*status)), Some(reason.clone()))
                }
                None => (None, None, None),
            };
            let statement = Statement::from_sql_and_values(
                backend,
                &sql,
                [
                    workspace.clone().into(),
                    connector.clone().into(),
                    p.ok.into(),
                    p.failed.into(),
                    p.last_ok_ms.into(),
                    failed_ms.into(),
                    status.into(),
                    reason.into(),
                ],
            );
            if let Err(e) = conn.execute_raw(statement).await {
                error = Some(e);
                unwritten.push(((workspace, connector), p));
            }
        }
        if !unwritten.is_empty()
            && let Ok(mut pending) = self.pending.lock()
        {
            for (key, p) in unwritten {
                let now = pending.entry(key).or_default();
                now.ok += p.ok;
                now.failed += p.failed;
                now.last_ok_ms = now.last_ok_ms.max(p.last_ok_ms);
                if now.last_failed.is_none() {
                    now.last_failed = p.last_failed;
                }
            }
        }
        error.map_or(Ok(()), Err)
    }

    /// The connector's inbound health (nothing until its first delivery), with this
    /// process's latest counts.
    pub async fn read<C: ConnectionTrait>(
        &self,
        conn: &C,
        workspace: &str,
        connector: &str,
    ) -> Result<Option<Health>, sea_orm::DbErr> {
        self.flush(conn).await?;
        let row =
            connector_inbound::Entity::find_by_id((workspace.to_owned(), connector.to_owned()))
                .one(conn)
                .await?;
        let at = |ms: Option<i64>| ms.and_then(DateTime::<Utc>::from_timestamp_millis);
        Ok(row.map(|r| Health {
            ok_total: r.ok_total,
            failed_total: r.failed_total,
            last_ok_at: at(r.last_ok_ms),
            last_failed_at: at(r.last_failed_ms),
            last_status: r.last_status,
            last_failure: r.last_failure,
        }))
    }
}

/// Writes the counts once a second until `shutdown`, and once more then.
pub fn spawn(
    db: DatabaseConnection,
    health: Arc<InboundHealth>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut shutdown = shutdown;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(FLUSH_EVERY) => {}
                _ = shutdown.changed() => {}
            }
            if let Err(e) = health.flush(&db).await {
                tracing::warn!(error = %e, "writing connector inbound counts failed");
            }
            if *shutdown.borrow() {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_counted_and_its_failure_kept_short() {
        let h = InboundHealth::default();
        h.record("w", "wecom", Delivery::Answered);
        h.record("w", "wecom", Delivery::Answered);
        h.record(
            "w",
            "wecom",
            Delivery::Failed {
                status: 401,
                reason: format!("  签名不符{}", "x".repeat(1000)),
            },
        );
        let pending = h.pending.lock().unwrap();
        let p = &pending[&("w".to_owned(), "wecom".to_owned())];
        assert_eq!((p.ok, p.failed), (2, 1));
        let (_, status, reason) = p.last_failed.clone().unwrap();
        assert_eq!(status, 401);
        assert!(reason.starts_with("签名不符"), "{reason}");
        assert_eq!(reason.chars().count(), REASON_CHARS);
    }
}
