//! Key orders: created, polled with backoff until done, then deleted.

use std::time::{Duration, Instant};

use keymgr_core::{Context, Error, Result};
use reqwest::Method;

use crate::manager::BarbicanKeyManager;
use crate::model::OrderJson;
use crate::transport::Call;

impl BarbicanKeyManager {
    pub(crate) async fn poll_order(
        &self,
        ctx: &Context,
        order: &str,
        what: &str,
    ) -> Result<OrderJson> {
        let cfg = &self.inner.cfg;
        let cap = Duration::from_secs_f64(cfg.retry_delay.max(0.05));
        let budget = Duration::from_secs_f64(cfg.retry_delay * f64::from(cfg.number_of_retries))
            .min(Duration::from_secs(7 * 86_400));
        let deadline = Instant::now() + budget;
        let mut wait = Duration::from_millis(20);
        loop {
            let call = Call::new(Method::GET, format!("orders/{order}"), what);
            let (reply, _) = self.ok(ctx, &call).await?;
            let o: OrderJson = reply.json(what)?;
            if o.status != "PENDING" {
                return Ok(o);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: format!("{what} (order {order} still PENDING)"),
                    after: budget,
                });
            }
            tokio::time::sleep(wait.min(deadline - now)).await;
            wait = (wait * 2).min(cap);
        }
    }
}

/// The last path segment of an href (an order's id).
pub(crate) fn last_segment(href: &str) -> Option<String> {
    let url = url::Url::parse(href).ok()?;
    let seg = url.path_segments()?.rfind(|s| !s.is_empty())?;
    uuid::Uuid::parse_str(seg).ok().map(|u| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_come_from_hrefs() {
        assert_eq!(
            last_segment("http://h:1/v1/orders/1258c03d-021d-471d-bf3c-b08b56f164b5").as_deref(),
            Some("1258c03d-021d-471d-bf3c-b08b56f164b5")
        );
        assert_eq!(last_segment("http://h:1/v1/orders/../x"), None);
        assert_eq!(last_segment("nonsense"), None);
    }
}
