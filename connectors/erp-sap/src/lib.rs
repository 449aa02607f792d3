//! SAP S/4HANA through its OData V2 APIs: `API_SALES_ORDER_SRV` (`A_SalesOrder` with its
//! `to_Item` and their `to_ScheduleLine`) and `API_OUTBOUND_DELIVERY_SRV`
//! (`A_OutbDeliveryHeader`, `A_OutbDeliveryItem`).
//!
//! **Session.** The first request authenticates with HTTP Basic (secrets `user` and
//! `password`) and keeps the session cookies SAP sets (`SAP_SESSIONID_<SID>_<client>`,
//! `sap-usercontext`) in the key-value store; later requests send only the cookies. When
//! the session has expired SAP answers 401, and the request is made again once with Basic
//! authentication, renewing the session.
//!
//! **Reading.** Orders changed since the watermark (`$filter=LastChangeDateTime ge
//! datetimeoffset'…'`, ordered by it), with items and schedule lines expanded. Paging is
//! the server's: every page's `__next` link (with its `$skiptoken`) is followed until a
//! page has none, so a default page of 1,000 never loses rows.
//!
//! **Normalised lines**: per item, the confirmed quantity, delivered quantity and open
//! confirmed quantity summed over its schedule lines, and the earliest confirmed delivery
//! date among those still open; rejected items are closed, completely processed ones
//! completed, a header delivery block makes its open lines blocked.
//!
//! **Poll**: `erp.order_changed`, `erp.delivery_overdue` (a confirmed date past with
//! quantity open, or an outbound delivery whose planned goods issue passed without goods
//! movement), `erp.delivery_completed`. **Operations**: `read_order`, `open_orders`.

#![cfg_attr(
    not(target_arch = "wasm32"),
    allow(
        dead_code,
        reason = "the entry points are exported only in the wasm32 component; native builds run the unit tests"
    )
)]

use base64::Engine as _;
use chrono::DateTime;
use erp_core::{Customer, LineStatus, OrderLine, PollState, Watch, number, text};
use serde::{Deserialize, Serialize};
use trellis_connector_sdk::{
    Call, Connector, Context, Error, JsonSchema, Manifest, Operation, Output, Polled, Value, http,
    json, kv, now_ms, secrets,
};

const SYSTEM: &str = "sap";
const ORDERS: &str = "/sap/opu/odata/sap/API_SALES_ORDER_SRV";
const DELIVERIES: &str = "/sap/opu/odata/sap/API_OUTBOUND_DELIVERY_SRV;v=0002";
const SESSION_KEY: &str = "session";
/// SAP's session lasts as long as its profile says; an expired one is renewed on 401.
const SESSION_TTL_MS: u64 = 30 * 60 * 1000;
const MAX_PAGES: usize = 500;

#[derive(Clone, Debug, Deserialize, JsonSchema)]
struct Site {
    /// The S/4HANA host, e.g. `https://my300000.s4hana.ondemand.com`.
    #[schemars(extend("x-trellis" = { "label": {"zh": "SAP 系统地址", "en": "SAP address"} }))]
    base_url: String,
    /// The client (`sap-client`), when the system needs it named.
    #[serde(default)]
    sap_client: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct PollConfig {
    #[serde(flatten)]
    site: Site,
    #[serde(flatten)]
    watch: Watch,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct OrderInput {
    /// The sales order number, e.g. `4711`.
    order: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CustomerInput {
    /// The sold-to party.
    customer: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Delivery {
    delivery: String,
    item: String,
    product: String,
    qty: f64,
    order_line: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct OrderOutput {
    order: String,
    #[schemars(with = "Vec<Value>")]
    lines: Vec<OrderLine>,
    deliveries: Vec<Delivery>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct LinesOutput {
    #[schemars(with = "Vec<Value>")]
    lines: Vec<OrderLine>,
}

struct Sap;

impl Connector for Sap {
    fn manifest() -> Manifest {
        Manifest::new("erp-sap", env!("CARGO_PKG_VERSION"))
            .display("SAP S/4HANA", "SAP S/4HANA")
            .description(
                "Reads sales orders, schedule lines and outbound deliveries from SAP S/4HANA \
                 (OData); polls order changes, overdue and completed deliveries.",
            )
            .host("*")
            .secret("user")
            .secret("password")
            .kv()
            .poll()
            .operation(Operation::new::<Site, OrderInput, OrderOutput>(
                "read_order",
                "读取销售订单",
                "Read a sales order",
            ))
            .operation(Operation::new::<Site, CustomerInput, LinesOutput>(
                "open_orders",
                "客户未交订单",
                "A customer's open orders",
            ))
    }

    fn invoke(call: Call) -> Result<Output, Error> {
        match call.operation() {
            "read_order" => call.handle(read_order),
            "open_orders" => call.handle(open_orders),
            other => Err(Error::unknown_operation(other)),
        }
    }

    fn poll(config: Value, cursor: Option<String>, _: Context) -> Result<Polled, Error> {
        let config: PollConfig = serde_json::from_value(config)
            .map_err(|e| Error::InvalidInput(format!("poll config: {e}")))?;
        let mut state = PollState::from_cursor(cursor.as_deref())?;
        let today = erp_core::today(now_ms(), config.watch.utc_offset_hours);
        let since = match &state.since {
            Some(s) => s.clone(),
            None => format!("{}T00:00:00.000Z", config.watch.first_read(today)?),
        };
        let orders = collect(
            &config.site,
            &format!(
                "{ORDERS}/A_SalesOrder?$filter={}&$orderby=LastChangeDateTime,SalesOrder&$expand=to_Item/to_ScheduleLine",
                encode(&format!("LastChangeDateTime ge datetimeoffset'{since}'"))
            ),
        )?;
        let lines = orders.iter().flat_map(lines_of).collect();
        let mut events = state.advance(SYSTEM, lines, today)?;
        let late = collect(
            &config.site,
            &format!(
                "{DELIVERIES}/A_OutbDeliveryHeader?$filter={}&$expand=to_DeliveryDocumentItem",
                encode(&format!(
                    "OverallGoodsMovementStatus ne 'C' and PlannedGoodsIssueDate lt datetime'{today}T00:00:00'"
                ))
            ),
        )?;
        let mut pending = Vec::new();
        for d in &late {
            let planned = odata_date(&d["PlannedGoodsIssueDate"]).unwrap_or_default();
            let delivery = text(&d["DeliveryDocument"]);
            for item in results(&d["to_DeliveryDocumentItem"]) {
                let key = format!("gi:{delivery}/{}", text(&item["DeliveryDocumentItem"]));
                let days = erp_core::date_of(&planned).map(|p| (today - p).num_days());
                pending.push((
                    key,
                    planned.clone(),
                    json!({
                        "system": SYSTEM, "reason": "goods_issue_missed",
                        "customer": { "id": text(&d["SoldToParty"]), "name": text(&d["SoldToParty"]) },
                        "company": text(&d["SoldToParty"]),
                        "delivery": delivery, "delivery_item": text(&item["DeliveryDocumentItem"]),
                        "order": text(&item["ReferenceSDDocument"]),
                        "line": text(&item["ReferenceSDDocumentItem"]),
                        "product": text(&item["Material"]),
                        "qty_open": number(&item["ActualDeliveryQuantity"]),
                        "due_date": planned, "days_overdue": days,
                    }),
                ));
            }
        }
        events.extend(state.raise_pending(SYSTEM, pending));
        Ok(Polled {
            events,
            cursor: Some(state.to_cursor()),
        })
    }
}

fn read_order(site: Site, input: OrderInput, _: &Context) -> Result<OrderOutput, Error> {
    let key = input.order.replace('\'', "''");
    let v = get(
        &site,
        &format!("{ORDERS}/A_SalesOrder('{key}')?$expand=to_Item/to_ScheduleLine"),
    )?;
    let lines = lines_of(&v["d"]);
    let items = collect(
        &site,
        &format!(
            "{DELIVERIES}/A_OutbDeliveryItem?$filter={}",
            encode(&format!("ReferenceSDDocument eq '{key}'"))
        ),
    )?;
    let deliveries = items
        .iter()
        .map(|i| Delivery {
            delivery: text(&i["DeliveryDocument"]),
            item: text(&i["DeliveryDocumentItem"]),
            product: text(&i["Material"]),
            qty: number(&i["ActualDeliveryQuantity"]),
            order_line: text(&i["ReferenceSDDocumentItem"]),
        })
        .collect();
    Ok(OrderOutput {
        order: input.order,
        lines,
        deliveries,
    })
}

fn open_orders(site: Site, input: CustomerInput, _: &Context) -> Result<LinesOutput, Error> {
    let filter = format!(
        "SoldToParty eq '{}' and OverallTotalDeliveryStatus ne 'C'",
        input.customer.replace('\'', "''")
    );
    let orders = collect(
        &site,
        &format!(
            "{ORDERS}/A_SalesOrder?$filter={}&$expand=to_Item/to_ScheduleLine",
            encode(&filter)
        ),
    )?;
    Ok(LinesOutput {
        lines: orders
            .iter()
            .flat_map(lines_of)
            .filter(|l| l.qty_open > 0.0)
            .collect(),
    })
}

/// A query value, percent-encoded (OData's own punctuation kept readable).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~'(),:".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `results` of an expanded navigation or a collection (`{"results": [...]}`), or none.
fn results(v: &Value) -> Vec<Value> {
    v["results"].as_array().cloned().unwrap_or_default()
}

/// An OData V2 date (`/Date(1764547200000)/`, `/Date(…+0000)/`) as `YYYY-MM-DD`.
fn odata_date(v: &Value) -> Option<String> {
    stamp(v).map(|t| t.format("%Y-%m-%d").to_string())
}

fn stamp(v: &Value) -> Option<DateTime<chrono::Utc>> {
    let inner = v.as_str()?.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let ms: String = inner
        .chars()
        .enumerate()
        .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
        .map(|(_, c)| c)
        .collect();
    DateTime::from_timestamp_millis(ms.parse().ok()?)
}

/// The order's lines, normalised (see the crate's description).
fn lines_of(order: &Value) -> Vec<OrderLine> {
    let customer = text(&order["SoldToParty"]);
    let blocked = !text(&order["DeliveryBlockReason"]).is_empty();
    let modified = stamp(&order["LastChangeDateTime"])
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    results(&order["to_Item"])
        .iter()
        .map(|item| {
            let schedule = results(&item["to_ScheduleLine"]);
            let sum = |k: &str| schedule.iter().map(|s| number(&s[k])).sum::<f64>();
            let (confirmed, shipped, open) = (
                sum("ConfdOrderQtyByMatlAvailCheck"),
                sum("DeliveredQtyInOrderQtyUnit"),
                sum("OpenConfdDelivQtyInOrdQtyUnit"),
            );
            let earliest = |k: &str, open_only: bool| {
                schedule
                    .iter()
                    .filter(|s| !open_only || number(&s["OpenConfdDelivQtyInOrdQtyUnit"]) > 0.0)
                    .filter_map(|s| odata_date(&s[k]))
                    .min()
            };
            let ordered = number(&item["RequestedQuantity"]);
            let status = if !text(&item["SalesDocumentRjcnReason"]).is_empty() {
                LineStatus::Closed
            } else if text(&item["SDProcessStatus"]) == "C"
                || (open <= 0.0 && shipped >= ordered && shipped > 0.0)
            {
                LineStatus::Completed
            } else if blocked {
                LineStatus::Blocked
            } else {
                LineStatus::Open
            };
            OrderLine {
                customer: Customer {
                    id: customer.clone(),
                    name: customer.clone(),
                },
                order: text(&order["SalesOrder"]),
                line: text(&item["SalesOrderItem"]),
                product: text(&item["Material"]),
                product_name: Some(text(&item["SalesOrderItemText"])).filter(|s| !s.is_empty()),
                qty_ordered: ordered,
                qty_confirmed: confirmed,
                qty_shipped: shipped,
                qty_open: open,
                promised_date: earliest("RequestedDeliveryDate", false)
                    .or_else(|| odata_date(&order["RequestedDeliveryDate"])),
                confirmed_date: earliest("ConfirmedDeliveryDate", true)
                    .or_else(|| earliest("ConfirmedDeliveryDate", false)),
                status,
                modified: modified.clone(),
            }
        })
        .collect()
}

/// Every entity of a collection, following each page's `__next` link.
fn collect(site: &Site, path: &str) -> Result<Vec<Value>, Error> {
    let base = site.base_url.trim_end_matches('/');
    let mut url = format!("{base}{path}");
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let v = get_url(site, &url)?;
        out.extend(results(&v["d"]));
        match v["d"]["__next"].as_str() {
            // An absolute link, or one relative to the service.
            Some(next) if next.starts_with("http") => url = next.to_owned(),
            Some(next) => url = format!("{base}{}/{next}", service_of(path)),
            None => return Ok(out),
        }
    }
    Err(Error::Internal(format!(
        "more than {MAX_PAGES} pages from {path}; narrow the read"
    )))
}

/// The service part of a path (`/sap/opu/odata/sap/API_SALES_ORDER_SRV`).
fn service_of(path: &str) -> &str {
    let end = path.find("_SRV").map(|i| {
        let rest = &path[i..];
        i + rest.find('/').unwrap_or(rest.len())
    });
    &path[..end.unwrap_or(path.len())]
}

fn get(site: &Site, path: &str) -> Result<Value, Error> {
    get_url(
        site,
        &format!("{}{path}", site.base_url.trim_end_matches('/')),
    )
}

/// GETs `url` as JSON with the session, renewing it once on 401.
fn get_url(site: &Site, url: &str) -> Result<Value, Error> {
    let mut url = url.to_owned();
    let sep = if url.contains('?') { '&' } else { '?' };
    if !url.contains("$format=") {
        url.push_str(&format!("{sep}$format=json"));
    }
    if let Some(client) = &site.sap_client
        && !url.contains("sap-client=")
    {
        url.push_str(&format!("&sap-client={client}"));
    }
    let session = kv::get(SESSION_KEY)?.map(|s| String::from_utf8_lossy(&s).into_owned());
    let request = |session: Option<&str>| -> Result<http::Response, Error> {
        let mut r = http::Request::get(url.clone()).header("accept", "application/json");
        r = match session {
            Some(cookies) => r.header("cookie", cookies),
            None => {
                let pair = format!("{}:{}", secrets::get("user")?, secrets::get("password")?);
                r.header(
                    "authorization",
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    ),
                )
            }
        };
        Ok(r.send()?)
    };
    let mut r = request(session.as_deref())?;
    if r.status == 401 && session.is_some() {
        kv::delete(SESSION_KEY)?;
        r = request(None)?;
    }
    let cookies: Vec<String> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, c)| c.split(';').next().map(|c| c.trim().to_owned()))
        .filter(|c| c.starts_with("SAP_SESSIONID") || c.starts_with("sap-usercontext="))
        .collect();
    if !cookies.is_empty() {
        kv::set(
            SESSION_KEY,
            cookies.join("; ").as_bytes(),
            Some(SESSION_TTL_MS),
        )?;
    }
    if !(200..300).contains(&r.status) {
        // OData's error body names the problem; a 401's is an HTML logon page.
        let detail = r.json_value().ok().and_then(|v| {
            v.pointer("/error/message/value")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        return Err(match (r.status, detail) {
            (401, _) => Error::AuthFailed("SAP refused the user and password".into()),
            (status, Some(d)) => Error::Remote {
                code: u32::from(status),
                message: format!("SAP: {d}"),
                retryable: status >= 500,
            },
            _ => r
                .error_for_status()
                .err()
                .unwrap_or_else(|| Error::Internal("SAP failed".into())),
        });
    }
    r.json_value()
}

// Exported only in the component: natively (where the unit tests run) the export names
// (`poll`, `invoke`…) would shadow the C library's.
#[cfg(target_arch = "wasm32")]
trellis_connector_sdk::export!(Sap);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_with_schedule_lines_becomes_lines() {
        let order = json!({
            "SalesOrder": "4711", "SoldToParty": "17100001", "DeliveryBlockReason": "",
            "LastChangeDateTime": "/Date(1764547200000+0000)/",
            "to_Item": { "results": [
                { "SalesOrderItem": "10", "Material": "X5", "RequestedQuantity": "10",
                  "SDProcessStatus": "B", "SalesDocumentRjcnReason": "",
                  "to_ScheduleLine": { "results": [
                    { "ScheduleLine": "1", "RequestedDeliveryDate": "/Date(1764460800000)/",
                      "ConfirmedDeliveryDate": "/Date(1764547200000)/",
                      "ConfdOrderQtyByMatlAvailCheck": "6", "DeliveredQtyInOrderQtyUnit": "6",
                      "OpenConfdDelivQtyInOrdQtyUnit": "0" },
                    { "ScheduleLine": "2", "RequestedDeliveryDate": "/Date(1764460800000)/",
                      "ConfirmedDeliveryDate": "/Date(1764720000000)/",
                      "ConfdOrderQtyByMatlAvailCheck": "4", "DeliveredQtyInOrderQtyUnit": "0",
                      "OpenConfdDelivQtyInOrdQtyUnit": "4" } ] } },
                { "SalesOrderItem": "20", "Material": "X6", "RequestedQuantity": "1",
                  "SDProcessStatus": "A", "SalesDocumentRjcnReason": "02",
                  "to_ScheduleLine": { "results": [] } }
            ] }
        });
        let lines = lines_of(&order);
        assert_eq!(lines.len(), 2);
        let l = &lines[0];
        assert_eq!(
            (l.qty_confirmed, l.qty_shipped, l.qty_open),
            (10.0, 6.0, 4.0)
        );
        assert_eq!(
            l.confirmed_date.as_deref(),
            Some("2025-12-03"),
            "the open line's date"
        );
        assert_eq!(l.promised_date.as_deref(), Some("2025-11-30"));
        assert_eq!(l.status, LineStatus::Open);
        assert_eq!(l.modified, "2025-12-01T00:00:00.000Z");
        assert_eq!(lines[1].status, LineStatus::Closed);
    }

    #[test]
    fn dates_links_and_filters_read_as_sap_writes_them() {
        assert_eq!(
            odata_date(&json!("/Date(1764547200000)/")).as_deref(),
            Some("2025-12-01")
        );
        assert_eq!(
            odata_date(&json!("/Date(1764547200000+0000)/")).as_deref(),
            Some("2025-12-01")
        );
        assert_eq!(odata_date(&json!(null)), None);
        assert_eq!(
            encode("LastChangeDateTime ge datetimeoffset'2025-12-01T00:00:00.000Z'"),
            "LastChangeDateTime%20ge%20datetimeoffset'2025-12-01T00:00:00.000Z'"
        );
        assert_eq!(
            service_of("/sap/opu/odata/sap/API_SALES_ORDER_SRV/A_SalesOrder?$x=1"),
            "/sap/opu/odata/sap/API_SALES_ORDER_SRV"
        );
        assert_eq!(
            service_of("/sap/opu/odata/sap/API_OUTBOUND_DELIVERY_SRV;v=0002/A_OutbDeliveryItem"),
            "/sap/opu/odata/sap/API_OUTBOUND_DELIVERY_SRV;v=0002"
        );
    }
}
